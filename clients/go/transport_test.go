package lars

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

func TestTransportPicksCallsAndReports(t *testing.T) {
	a, r := testAgent(t)
	var batches []*ReportBatch
	a.batcher = newBatcher(a.names, 64, a.id, "", 1000, time.Hour, func(_ string, d []byte, _ int) {
		b, err := DecodeReportBatch(d)
		if err != nil {
			t.Error(err)
			return
		}
		batches = append(batches, b)
	})
	status := map[string]int{"/ok": 200, "/fail": 503, "/busy": 429, "/missing": 404}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/slow" {
			time.Sleep(300 * time.Millisecond)
		}
		w.WriteHeader(status[req.URL.Path])
	}))
	defer srv.Close()
	ip, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	s := tenHostState(1)
	s.Hosts = []RouteHost{{IP: ip, Port: p, Weight: 100, State: StateHealthy, Reason: "registered", PickWeight: 100}}
	a.apply(r, s)
	r.status.Store(statusLoaded)
	client := &http.Client{Transport: &Transport{Agent: a}}
	for _, path := range []string{"/ok", "/fail", "/busy", "/missing"} {
		resp, err := client.Get("lars://1.1" + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != status[path] {
			t.Fatalf("%s: status %d", path, resp.StatusCode)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "lars://1.1/slow", nil)
	if _, err := client.Do(req); err == nil {
		t.Fatal("the slow call did not time out")
	}
	if _, err := client.Get("lars://users/x"); err == nil {
		t.Fatal("a URL without a route was sent")
	}
	a.batcher.flush()
	if len(batches) != 1 {
		t.Fatalf("%d batches", len(batches))
	}
	var got []int32
	for _, rep := range batches[0].Reports {
		got = append(got, rep.Retcode)
	}
	want := []int32{0, 503, 429, 0, RetcodeTimeout}
	if len(got) != len(want) {
		t.Fatalf("retcodes %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("retcodes %v, want %v", got, want)
		}
	}
}
