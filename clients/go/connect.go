package lars

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
)

// natsOptions: the login and TLS of Options (each from LARS_NATS_* when not
// given), and reconnecting for ever: picks keep working from the cache, the
// outbox keeps the reports until the connection is back.
func natsOptions(o resolved, a *Agent) ([]nats.Option, error) {
	opts := []nats.Option{
		nats.Name(o.AgentID),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250e6),
		nats.ReconnectBufSize(-1), // a publish while away fails at once; the outbox retries it
		nats.ReconnectHandler(func(*nats.Conn) { a.onReconnect() }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				o.Logger.Warn("NATS connection lost; picking from the cache, reports held", "err", err.Error())
			}
		}),
	}
	urlHasLogin := strings.Contains(o.Servers, "@")
	switch {
	case urlHasLogin:
	case o.CredsFile != "":
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	case o.NKeySeedFile != "":
		opt, err := nats.NkeyOptionFromSeed(o.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("lars: NKey seed file %s: %w", o.NKeySeedFile, err)
		}
		opts = append(opts, opt)
	case o.Token != "":
		opts = append(opts, nats.Token(o.Token))
	case o.User != "":
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	}
	if o.TLSCAFile != "" || o.TLSCertFile != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if o.TLSCAFile != "" {
			pem, err := os.ReadFile(o.TLSCAFile)
			if err != nil {
				return nil, fmt.Errorf("lars: TLS CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("lars: TLS CA file %s holds no certificate", o.TLSCAFile)
			}
			cfg.RootCAs = pool
		}
		if o.TLSCertFile != "" {
			cert, err := tls.LoadX509KeyPair(o.TLSCertFile, o.TLSKeyFile)
			if err != nil {
				return nil, fmt.Errorf("lars: TLS client certificate: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, nats.Secure(cfg))
	}
	return opts, nil
}
