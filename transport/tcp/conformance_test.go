package tcp

import (
	"path/filepath"
	"sync"
	"testing"

	"github.com/synod-go/synod/transport"
	"github.com/synod-go/synod/transport/transporttest"
)

// harness runs the transport conformance suite over real sockets: each node
// is a Server, Stop closes it (its connections break) and Start listens
// again at the same address.
type harness struct {
	t       testing.TB
	network string
	opts    Options

	mu      sync.Mutex
	servers map[string]*Server
	n       int
}

const conformanceMaxMessage = 1 << 20

func newHarness(network string) func(t testing.TB) transporttest.Harness {
	return func(t testing.TB) transporttest.Harness {
		h := &harness{t: t, network: network, opts: Options{MaxFrameSize: conformanceMaxMessage}, servers: make(map[string]*Server)}
		t.Cleanup(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			for _, s := range h.servers {
				s.Close()
			}
		})
		return h
	}
}

func (h *harness) Listen(mux *transport.Mux) string {
	h.t.Helper()
	address := "127.0.0.1:0"
	if h.network == "unix" {
		h.mu.Lock()
		h.n++
		address = filepath.Join(shortTempDir(h.t), "n.sock")
		h.mu.Unlock()
	}
	s, err := Listen(h.network, address, mux, h.opts)
	if err != nil {
		h.t.Fatal(err)
	}
	h.mu.Lock()
	h.servers[s.Addr()] = s
	h.mu.Unlock()
	return s.Addr()
}

func (h *harness) Dialer() transport.Dialer {
	h.t.Helper()
	return newDialer(h.t, h.opts)
}

func (h *harness) Stop(addr string) {
	h.mu.Lock()
	s := h.servers[addr]
	delete(h.servers, addr)
	h.mu.Unlock()
	if s == nil {
		h.t.Fatalf("Stop(%q): no such server", addr)
	}
	s.Close()
}

func (h *harness) Start(addr string, mux *transport.Mux) {
	h.t.Helper()
	s, err := ListenAddr(addr, mux, h.opts)
	if err != nil {
		h.t.Fatal(err)
	}
	h.mu.Lock()
	h.servers[addr] = s
	h.mu.Unlock()
}

func (h *harness) MaxMessageSize() int { return conformanceMaxMessage }

func TestConformance(t *testing.T) {
	checkLeaks(t)
	t.Run("tcp", func(t *testing.T) { transporttest.Run(t, newHarness("tcp")) })
	t.Run("unix", func(t *testing.T) { transporttest.Run(t, newHarness("unix")) })
}

// BenchmarkConformance is the suite's benchmark (callers share one Conn).
func BenchmarkConformance(b *testing.B) { transporttest.Benchmark(b, newHarness("tcp")) }
