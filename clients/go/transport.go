package lars

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Transport is an http.RoundTripper for lars://<modid>.<cmdid>/<path> URLs:
// it picks a host of the route, sends the request to http://<ip>:<port>/<path>
// through Base, and reports the outcome by itself, classified as the
// TypeScript HTTP integration classifies it (src/integrations/outcome.ts):
// 5xx and 429 are failures (the status is the retcode), other 4xx are not,
// a timeout is retcode -1, a connection error -2, a success slower than
// Slow -3. The latency is the time to the response's headers. Other URLs
// go to Base untouched.
//
//	client := &http.Client{Transport: &lars.Transport{Agent: agent}, Timeout: time.Second}
//	resp, err := client.Get("lars://7.1/users/42")
type Transport struct {
	Agent *Agent
	// Base sends the requests (default http.DefaultTransport).
	Base http.RoundTripper
	// Scheme of the calls to the hosts (default "http").
	Scheme string
	// Failure policy; the zero value is the TypeScript integration's default.
	Count4xx, Ignore5xx, Ignore429, IgnoreTimeouts, IgnoreConnectionErrors bool
	// Slow: a success slower than this is a failure (0: never).
	Slow time.Duration
	// Key, when set, gives the hash strategy's key of a request.
	Key func(*http.Request) string
}

// Retcodes of outcomes without a status of their own.
const (
	RetcodeTimeout    = -1
	RetcodeConnection = -2
	RetcodeSlow       = -3
)

// ParseRoute reads the route of a lars://<modid>.<cmdid>/ URL host.
func ParseRoute(host string) (modid, cmdid uint32, err error) {
	i := strings.IndexByte(host, '.')
	if i <= 0 {
		return 0, 0, fmt.Errorf("lars: not a lars://<modid>.<cmdid>/ URL host: %q", host)
	}
	m, err1 := strconv.ParseUint(host[:i], 10, 32)
	c, err2 := strconv.ParseUint(host[i+1:], 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("lars: not a lars://<modid>.<cmdid>/ URL host: %q", host)
	}
	return uint32(m), uint32(c), nil
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	if req.URL.Scheme != "lars" {
		return base.RoundTrip(req)
	}
	modid, cmdid, err := ParseRoute(req.URL.Host)
	if err != nil {
		return nil, err
	}
	var h Host
	if t.Key != nil {
		h, err = t.Agent.GetHostKey(req.Context(), modid, cmdid, t.Key(req))
	} else {
		h, err = t.Agent.GetHost(req.Context(), modid, cmdid)
	}
	if err != nil {
		return nil, err
	}
	out := req.Clone(req.Context())
	scheme := t.Scheme
	if scheme == "" {
		scheme = "http"
	}
	out.URL.Scheme = scheme
	out.URL.Host = net.JoinHostPort(h.IP, strconv.Itoa(h.Port))
	out.Host = out.URL.Host
	start := time.Now()
	resp, err := base.RoundTrip(out)
	lat := time.Since(start)
	if err != nil {
		_ = t.Agent.Report(h, t.errorRetcode(req.Context(), err), lat)
		return nil, err
	}
	_ = t.Agent.Report(h, t.statusRetcode(resp.StatusCode, lat), lat)
	return resp, nil
}

func (t *Transport) statusRetcode(status int, lat time.Duration) int32 {
	switch {
	case status >= 500 && status <= 599:
		if !t.Ignore5xx {
			return int32(status)
		}
	case status == 429:
		if !t.Ignore429 {
			return int32(status)
		}
	case status >= 400 && status <= 499:
		if t.Count4xx {
			return int32(status)
		}
	}
	if t.Slow > 0 && lat > t.Slow {
		return RetcodeSlow
	}
	return 0
}

func (t *Transport) errorRetcode(ctx context.Context, err error) int32 {
	var ne net.Error
	timedOut := errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
	if timedOut {
		if t.IgnoreTimeouts {
			return 0
		}
		return RetcodeTimeout
	}
	if t.IgnoreConnectionErrors {
		return 0
	}
	return RetcodeConnection
}
