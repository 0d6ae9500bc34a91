package lars

import (
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// The conformance vectors (schemas/conformance/), generated from the
// TypeScript agent: this SDK must give the same answers.

func readVectors(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "schemas", "conformance", name))
	if err != nil {
		t.Fatalf("read vectors: %v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
}

type pickStep struct {
	Op            string      `json:"op"`
	State         *RouteState `json:"state"`
	Now           float64     `json:"now"`
	Key           *string     `json:"key"`
	Want          *string     `json:"want"`
	Host          string      `json:"host"`
	Retcode       int32       `json:"retcode"`
	LatencyMs     float64     `json:"latency_ms"`
	WantLatencyMs float64     `json:"want_latency_ms"`
	WantInflight  int         `json:"want_inflight"`
}

type pickVector struct {
	Name                  string     `json:"name"`
	AgentID               string     `json:"agent_id"`
	Strategy              *string    `json:"strategy"`
	Seed                  uint32     `json:"seed"`
	Zone                  *string    `json:"zone"`
	ZoneMinHealthyPercent float64    `json:"zone_min_healthy_percent"`
	TimeoutMs             float64    `json:"timeout_ms"`
	DecayMs               float64    `json:"decay_ms"`
	ProbeTrials           int        `json:"probe_trials"`
	Steps                 []pickStep `json:"steps"`
}

type shareVector struct {
	Name      string             `json:"name"`
	Strategy  string             `json:"strategy"`
	State     RouteState         `json:"state"`
	Picks     int                `json:"picks"`
	Want      map[string]float64 `json:"want"`
	Tolerance float64            `json:"tolerance"`
}

// newScriptRoute builds a route model as the agent does, with the vector's seeded source and a scripted clock.
func newScriptRoute(v pickVector, clock *float64) *agentRoute {
	random := SeededRandom(v.Seed)
	now := func() float64 { return *clock }
	so := strategyOptions{random: random, now: now, decayMs: v.DecayMs, timeoutMs: v.TimeoutMs}
	mk := func(name string) strategy {
		if v.Zone == nil {
			return createStrategy(name, so)
		}
		return newZoneAware(func() strategy { return createStrategy(name, so) }, *v.Zone, v.ZoneMinHealthyPercent, random)
	}
	override := ""
	if v.Strategy != nil {
		override = *v.Strategy
	}
	return newAgentRoute(v.AgentID, override, mk)
}

// runPickVector runs one script; it returns the first step that differs, or -1.
func runPickVector(t *testing.T, v pickVector) {
	t.Helper()
	clock := 0.0
	r := newScriptRoute(v, &clock)
	now := func() float64 { return clock }
	fb := feedbackOptions{timeoutMs: v.TimeoutMs, decayMs: v.DecayMs}
	for i, st := range v.Steps {
		switch st.Op {
		case "route":
			r.apply(st.State)
		case "pick":
			clock = st.Now
			key, hasKey := "", st.Key != nil
			if hasKey {
				key = *st.Key
			}
			got := "null"
			if j := r.pickAt(key, hasKey, now, fb, v.ProbeTrials); j >= 0 {
				got = r.hosts[j].key
			}
			want := "null"
			if st.Want != nil {
				want = *st.Want
			}
			if got != want {
				t.Fatalf("%s: step %d (pick at %v): got %s, want %s", v.Name, i, st.Now, got, want)
			}
		case "report":
			clock = st.Now
			h := r.byKey[st.Host]
			if h == nil {
				t.Fatalf("%s: step %d: unknown host %s", v.Name, i, st.Host)
			}
			noteReport(h, st.Retcode == 0, math.Min(st.LatencyMs, maxLatency), st.Now, fb)
			if !near(h.latencyMs, st.WantLatencyMs) || h.inflight != st.WantInflight {
				t.Fatalf("%s: step %d (report): latency %v inflight %d, want %v and %d", v.Name, i, h.latencyMs, h.inflight, st.WantLatencyMs, st.WantInflight)
			}
		default:
			t.Fatalf("%s: step %d: unknown op %q", v.Name, i, st.Op)
		}
	}
}

func near(a, b float64) bool {
	return a == b || math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

func TestConformancePicks(t *testing.T) {
	var file struct {
		Picks  []pickVector  `json:"picks"`
		Shares []shareVector `json:"shares"`
	}
	readVectors(t, "picks.json", &file)
	if len(file.Picks) < 10 {
		t.Fatalf("only %d pick vectors", len(file.Picks))
	}
	for _, v := range file.Picks {
		v := v
		t.Run(v.Name, func(t *testing.T) { runPickVector(t, v) })
	}
	for _, v := range file.Shares {
		v := v
		t.Run(v.Name, func(t *testing.T) {
			r := newAgentRoute("agent-a", v.Strategy, func(name string) strategy {
				return createStrategy(name, strategyOptions{random: newRandom(), now: func() float64 { return 0 }})
			})
			r.apply(&v.State)
			counts := map[string]int{}
			for k := 0; k < v.Picks; k++ {
				counts[r.hosts[r.strategy.pick("", false)].key]++
			}
			for host, want := range v.Want {
				got := float64(counts[host]) / float64(v.Picks)
				if math.Abs(got-want) > v.Tolerance {
					t.Errorf("%s: share of %s %.4f, want %.4f ± %.2f", v.Name, host, got, want, v.Tolerance)
				}
			}
		})
	}
}

type messageVector struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	Hex  string `json:"hex"`
	Want string `json:"want"`
}

type batchStep struct {
	Op          string   `json:"op"`
	Now         float64  `json:"now"`
	Modid       uint32   `json:"modid"`
	Cmdid       uint32   `json:"cmdid"`
	IP          string   `json:"ip"`
	Port        int      `json:"port"`
	Retcode     int32    `json:"retcode"`
	LatencyMs   float64  `json:"latency_ms"`
	Utilization *float64 `json:"utilization"`
	Attempt     int      `json:"attempt"`
	AttemptKind int      `json:"attempt_kind"`
}

type batchVector struct {
	Name       string      `json:"name"`
	Sender     string      `json:"sender"`
	Zone       *string     `json:"zone"`
	Partitions int         `json:"partitions"`
	Prefix     string      `json:"prefix"`
	MaxReports int         `json:"max_reports"`
	Steps      []batchStep `json:"steps"`
	Want       []struct {
		Subject string `json:"subject"`
		Hex     string `json:"hex"`
		Reports int    `json:"reports"`
	} `json:"want"`
}

type wireFile struct {
	Messages []messageVector `json:"messages"`
	Batches  []batchVector   `json:"batches"`
	MsgIDs   []struct {
		Sender   string `json:"sender"`
		Instance string `json:"instance"`
		Seq      uint64 `json:"seq"`
		ID       string `json:"id"`
	} `json:"msg_ids"`
	MsgIDParse []struct {
		ID   string `json:"id"`
		Want *struct {
			Sender   string `json:"sender"`
			Instance string `json:"instance"`
			Seq      uint64 `json:"seq"`
		} `json:"want"`
	} `json:"msg_id_parse"`
	Hashes []struct {
		S       string `json:"s"`
		FNV1a32 uint32 `json:"fnv1a32"`
		Hash32  uint32 `json:"hash32"`
	} `json:"hashes"`
	Partitions []struct {
		Modid, Cmdid uint32
		Partitions   int `json:"partitions"`
		Partition    int `json:"partition"`
	} `json:"partitions"`
}

func kindOf(err error) string {
	if err == nil {
		return "ok"
	}
	if re, ok := err.(*RejectError); ok {
		return string(re.Kind)
	}
	return "error: " + err.Error()
}

func TestConformanceWire(t *testing.T) {
	var w wireFile
	readVectors(t, "wire.json", &w)
	readers := map[string]func([]byte) error{
		"route_state":       func(b []byte) error { _, err := DecodeRouteState(b); return err },
		"report_batch":      func(b []byte) error { _, err := DecodeReportBatch(b); return err },
		"self_registration": func(b []byte) error { _, err := decodeSelfRegistration(b); return err },
	}
	checked := 0
	for _, m := range w.Messages {
		read, ok := readers[m.Kind]
		if !ok {
			continue // route events and registry entries: an agent reads neither
		}
		b, err := hex.DecodeString(m.Hex)
		if err != nil {
			t.Fatal(err)
		}
		if got := kindOf(read(b)); got != m.Want {
			t.Errorf("%s %q: got %s, want %s", m.Kind, m.Name, got, m.Want)
		}
		checked++
	}
	if checked < 50 {
		t.Errorf("only %d message vectors checked", checked)
	}
	for _, v := range w.Batches {
		zone := ""
		if v.Zone != nil {
			zone = *v.Zone
		}
		n, err := newNames(v.Prefix)
		if err != nil {
			t.Fatal(err)
		}
		clock := 0.0
		type out struct {
			subject string
			hex     string
			reports int
		}
		var got []out
		b := newBatcher(n, v.Partitions, v.Sender, zone, v.MaxReports, 1<<62, func(s string, d []byte, r int) {
			got = append(got, out{s, hex.EncodeToString(d), r})
		})
		for _, st := range v.Steps {
			clock = st.Now
			if st.Op == "flush" {
				b.flush()
				continue
			}
			u := -1.0
			if st.Utilization != nil {
				u = *st.Utilization
			}
			kind := AttemptKind(st.AttemptKind)
			if st.Attempt > 0 && kind == AttemptFirst {
				kind = AttemptRetry // the reference's default kind of a mark
			}
			b.add(clock, st.Modid, st.Cmdid, st.IP, st.Port, nil, st.Retcode, st.LatencyMs, u, st.Attempt, kind)
		}
		b.flush()
		b.stop()
		if len(got) != len(v.Want) {
			t.Fatalf("%s: %d batches, want %d", v.Name, len(got), len(v.Want))
		}
		for i, g := range got {
			want := v.Want[i]
			if g.subject != want.Subject || g.hex != want.Hex || g.reports != want.Reports {
				t.Errorf("%s: batch %d:\n got %s %s (%d)\nwant %s %s (%d)", v.Name, i, g.subject, g.hex, g.reports, want.Subject, want.Hex, want.Reports)
			}
		}
	}
	for _, m := range w.MsgIDs {
		if got := ReportMsgID(m.Sender, m.Instance, m.Seq); got != m.ID {
			t.Errorf("msg id %s, want %s", got, m.ID)
		}
	}
	for _, p := range w.MsgIDParse {
		s, i, q, ok := ParseReportMsgID(p.ID)
		if ok != (p.Want != nil) || (ok && (s != p.Want.Sender || i != p.Want.Instance || q != p.Want.Seq)) {
			t.Errorf("parse %q: got %q %q %d %v, want %+v", p.ID, s, i, q, ok, p.Want)
		}
	}
	for _, h := range w.Hashes {
		s := validUTF8(h.S)
		if FNV1a32(s) != h.FNV1a32 || Hash32(s) != h.Hash32 {
			t.Errorf("hash of %q: %d %d, want %d %d", h.S, FNV1a32(s), Hash32(s), h.FNV1a32, h.Hash32)
		}
	}
	for _, p := range w.Partitions {
		if got := Partition(p.Modid, p.Cmdid, p.Partitions); got != p.Partition {
			t.Errorf("partition of %d.%d mod %d: %d, want %d", p.Modid, p.Cmdid, p.Partitions, got, p.Partition)
		}
	}
}

// The route state's fast path accepts exactly the samples the general path
// accepts, with the same value, and leaves every refusal to it.
func TestRouteStateFastPathAgreesWithTheGeneralPath(t *testing.T) {
	var w wireFile
	readVectors(t, "wire.json", &w)
	fast := 0
	// one intern table across every sample, as a route's subscription keeps it: the same states out
	intern := map[string]string{}
	for _, m := range w.Messages {
		if m.Kind != "route_state" {
			continue
		}
		b, _ := hex.DecodeString(m.Hex)
		fs, fok := fastRouteState(b)
		gs, gerr := decodeRouteStateGeneral(b)
		is, ierr := decodeRouteStateInterned(b, intern)
		if (ierr == nil) != (gerr == nil) || (ierr == nil && !reflect.DeepEqual(is, gs)) {
			t.Errorf("%q: interned %+v %v\ngeneral %+v %v", m.Name, is, ierr, gs, gerr)
		}
		if fok && gerr != nil {
			t.Errorf("%q: the fast path accepts what the general path refuses (%v)", m.Name, gerr)
			continue
		}
		if fok {
			fast++
			if !reflect.DeepEqual(fs, gs) {
				t.Errorf("%q: fast %+v\ngeneral %+v", m.Name, fs, gs)
			}
		}
	}
	if fast < 4 {
		t.Errorf("the fast path took only %d valid samples", fast)
	}
	s := tenHostState(3)
	s.Strategy, s.Hosts[0].Zone, s.Hosts[1].TrialAgent = StrategyHash, "z1", "agent-b"
	b := encodeRouteState(s)
	fs, ok := fastRouteState(b)
	gs, err := decodeRouteStateGeneral(b)
	if !ok || err != nil || !reflect.DeepEqual(fs, gs) {
		t.Fatalf("fast %v %+v, general %v %+v", ok, fs, err, gs)
	}
}

type stampVector struct {
	Version uint64  `json:"version"`
	Ts      float64 `json:"ts"`
	Removed bool    `json:"removed"`
}

func (v *stampVector) stamp() *versionStamp {
	if v == nil {
		return nil
	}
	return &versionStamp{v.Version, v.Ts, v.Removed}
}

func TestConformanceFollow(t *testing.T) {
	var f struct {
		StateVerdicts []struct {
			Name         string       `json:"name"`
			Held         *stampVector `json:"held"`
			State        stampVector  `json:"state"`
			VersionReset bool         `json:"version_reset"`
			Want         string       `json:"want"`
		} `json:"state_verdicts"`
		VersionResets []struct {
			Name         string       `json:"name"`
			Held         *stampVector `json:"held"`
			Stored       *stampVector `json:"stored"`
			VersionReset bool         `json:"version_reset"`
			Want         bool         `json:"want"`
		} `json:"version_resets"`
	}
	readVectors(t, "follow.json", &f)
	if len(f.StateVerdicts) < 20 || len(f.VersionResets) < 20 {
		t.Fatalf("%d state verdicts, %d version resets", len(f.StateVerdicts), len(f.VersionResets))
	}
	for _, v := range f.StateVerdicts {
		if got := stateVerdictOf(v.Held.stamp(), *v.State.stamp(), v.VersionReset); string(got) != v.Want {
			t.Errorf("%s: %s, want %s", v.Name, got, v.Want)
		}
	}
	for _, v := range f.VersionResets {
		if got := versionsStartedAgain(v.Held.stamp(), v.Stored.stamp(), v.VersionReset); got != v.Want {
			t.Errorf("%s: %v, want %v", v.Name, got, v.Want)
		}
	}
}
