// Package lars is the Go SDK of Lars on NATS: it follows routes from the
// route nodes, picks hosts in-process with the same strategies and the same
// feedback as the TypeScript agent, and reports call results in batches
// with acknowledged delivery (JetStream publishes with message ids, an
// outbox bounded and retried across reconnects).
//
//	agent, err := lars.Connect(ctx, lars.Options{Servers: "nats://127.0.0.1:4222"})
//	host, err := agent.GetHost(ctx, 7, 1)
//	... call host.IP:host.Port ...
//	agent.Report(7, 1, host, 0, 12*time.Millisecond)
//	agent.Close(ctx)
//
// An Agent is safe for concurrent use by many goroutines. See docs/go.md.
package lars

import (
	"errors"
	"fmt"
)

// Host is a picked host, with the route it was picked for: hand it back to
// Report as it is (the agent then finds its feedback without a lookup). A
// Host built by the caller (IP, Port, Modid, Cmdid) is accepted by Report too.
type Host struct {
	IP    string
	Port  int
	Modid uint32
	Cmdid uint32
	h     *pickHost
	r     *followed
}

func (h Host) String() string { return fmt.Sprintf("%s:%d", h.IP, h.Port) }

var (
	// ErrNoRoute: the route is not registered (or was removed), or did not load within LoadTimeout.
	ErrNoRoute = errors.New("lars: no route")
	// ErrNoHost: the route has no host that may be picked now (Lars' RET_OVERLOAD).
	ErrNoHost = errors.New("lars: no host may be picked now")
	// ErrClosed: the agent is closed.
	ErrClosed = errors.New("lars: agent closed")
)

// Logger is what the agent logs to. A *slog.Logger (Go 1.21 and later)
// satisfies it as it is; Go 1.19 has no log/slog, so the SDK asks for no
// more than these three methods. Keys and values alternate in args.
type Logger interface {
	Info(msg string, args ...any)
	Warn(msg string, args ...any)
	Error(msg string, args ...any)
}

type nopLogger struct{}

func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}
