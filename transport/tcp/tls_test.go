package tcp

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/synod-go/synod/transport"
)

func TestTLS(t *testing.T) {
	checkLeaks(t)
	ctx := testCtx(t)
	_, nodes, err := GenerateCluster("", "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	var handled atomic.Int64
	mux := echoMux()
	mux.Handle("count", func(ctx context.Context, req []byte) ([]byte, error) {
		handled.Add(1)
		return nil, nil
	})
	logs := &logBuf{}
	srv := startServer(t, "tcp", mux, Options{TLS: nodes[0].TLSConfig(), Logger: logs.logger()})

	t.Run("same CA", func(t *testing.T) {
		for _, network := range []string{"tcp", "unix"} {
			srv := srv
			if network == "unix" {
				srv = startServer(t, "unix", mux, Options{TLS: nodes[0].TLSConfig()})
			}
			c := dial(t, newDialer(t, Options{TLS: nodes[1].TLSConfig()}), srv.Addr())
			if reply, err := c.Call(ctx, "echo", []byte("secret")); err != nil || string(reply) != "secret" {
				t.Fatalf("%s: %q, %v", network, reply, err)
			}
			s, err := c.NewStream(ctx, "echo")
			if err != nil {
				t.Fatal(err)
			}
			if err := s.WriteMsg([]byte("m")); err != nil {
				t.Fatal(err)
			}
			if msg, err := s.ReadMsg(); err != nil || string(msg) != "m" {
				t.Fatalf("stream: %q, %v", msg, err)
			}
			s.Close()
		}
	})

	refused := func(t *testing.T, name string, o Options) {
		t.Helper()
		before := strings.Count(logs.String(), "TLS handshake failed")
		c := dial(t, newDialer(t, o), srv.Addr())
		if _, err := c.Call(ctx, "count", nil); !errors.Is(err, transport.ErrUnreachable) {
			t.Fatalf("%s: call succeeded or failed oddly: %v", name, err)
		}
		waitFor(t, "the server to log the rejected handshake", func() bool {
			return strings.Count(logs.String(), "TLS handshake failed") > before
		})
		if n := handled.Load(); n != 0 {
			t.Fatalf("%s: handler ran %d times", name, n)
		}
	}

	t.Run("other CA", func(t *testing.T) {
		_, others, err := GenerateCluster("", "a")
		if err != nil {
			t.Fatal(err)
		}
		// Trusts the server, but presents a certificate of another CA.
		cfg := others[0].TLSConfig()
		cfg.RootCAs = nodes[0].TLSConfig().RootCAs
		refused(t, "client cert from another CA", Options{TLS: cfg})
		// Presents a good certificate, but does not trust the server.
		cfg = nodes[1].TLSConfig()
		cfg.RootCAs = x509.NewCertPool()
		cfg.RootCAs.AddCert(mustParse(t, others[0].CAPEM))
		c := dial(t, newDialer(t, Options{TLS: cfg}), srv.Addr())
		if _, err := c.Call(ctx, "count", nil); !errors.Is(err, transport.ErrUnreachable) {
			t.Fatalf("server from another CA: %v", err)
		}
	})

	t.Run("no client cert", func(t *testing.T) {
		cfg := nodes[1].TLSConfig()
		cfg.Certificates = nil
		refused(t, "no client certificate", Options{TLS: cfg})
	})

	t.Run("plain client", func(t *testing.T) {
		refused(t, "plain TCP client", Options{})

		// A raw client that sends a valid preamble and call frame without
		// TLS: the server fails the handshake and never reads a frame.
		before := strings.Count(logs.String(), "TLS handshake failed")
		nc, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		buf := append([]byte(nil), preamble[:]...)
		buf = appendFrame(buf, &frame{typ: frameCall, id: 1, route: "count"})
		if _, err := nc.Write(buf); err != nil {
			t.Fatal(err)
		}
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadAll(nc); err != nil && !isConnReset(err) {
			t.Fatalf("server did not close the connection: %v", err)
		}
		waitFor(t, "the server to log the rejected handshake", func() bool {
			return strings.Count(logs.String(), "TLS handshake failed") > before
		})
		if n := handled.Load(); n != 0 {
			t.Fatalf("handler ran %d times", n)
		}
	})

	t.Run("files", func(t *testing.T) {
		dir := t.TempDir()
		if _, _, err := GenerateCluster(dir, "n1", "n2"); err != nil {
			t.Fatal(err)
		}
		c1, err := LoadTLSConfig(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "n1.crt"), filepath.Join(dir, "n1.key"))
		if err != nil {
			t.Fatal(err)
		}
		c2, err := LoadTLSConfig(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "n2.crt"), filepath.Join(dir, "n2.key"))
		if err != nil {
			t.Fatal(err)
		}
		srv := startServer(t, "tcp", echoMux(), Options{TLS: c1})
		c := dial(t, newDialer(t, Options{TLS: c2}), srv.Addr())
		if _, err := c.Call(ctx, "echo", nil); err != nil {
			t.Fatal(err)
		}
	})
}

func TestTLSHandshakeTimeout(t *testing.T) {
	checkLeaks(t)
	_, nodes, err := GenerateCluster("", "a")
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuf{}
	srv := startServer(t, "tcp", echoMux(), Options{TLS: nodes[0].TLSConfig(), HandshakeTimeout: 100 * time.Millisecond, Logger: logs.logger()})
	nc, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// Send nothing: the server gives up after the handshake timeout.
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(nc); err != nil && !isConnReset(err) {
		t.Fatalf("server did not close a silent connection: %v", err)
	}
	waitFor(t, "the log line", func() bool { return strings.Contains(logs.String(), "TLS handshake failed") })
}

func mustParse(t *testing.T, pemBytes []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		t.Fatal("bad PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func isConnReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}
