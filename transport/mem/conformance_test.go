package mem_test

import (
	"fmt"
	"testing"

	"github.com/synod-go/synod/transport"
	"github.com/synod-go/synod/transport/mem"
	"github.com/synod-go/synod/transport/transporttest"
)

// harness runs the conformance suite on a reliable mem.Network.
type harness struct {
	t     testing.TB
	net   *mem.Network
	nodes int
}

const maxMessageSize = 1 << 20

func newHarness(t testing.TB) transporttest.Harness {
	net := mem.NewNetwork(mem.Options{MaxMessageSize: maxMessageSize})
	t.Cleanup(func() { net.Close() })
	return &harness{t: t, net: net}
}

func (h *harness) Listen(mux *transport.Mux) string {
	h.nodes++
	addr := fmt.Sprintf("server-%d", h.nodes)
	if _, err := h.net.Listen(addr, mux); err != nil {
		h.t.Fatal(err)
	}
	return addr
}

func (h *harness) Dialer() transport.Dialer {
	h.nodes++
	return h.net.Dialer(fmt.Sprintf("client-%d", h.nodes))
}

func (h *harness) Stop(addr string) { h.net.Kill(addr) }

func (h *harness) Start(addr string, mux *transport.Mux) {
	if _, err := h.net.Restart(addr, mux); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) MaxMessageSize() int { return maxMessageSize }

func TestConformance(t *testing.T) { transporttest.Run(t, newHarness) }

func BenchmarkConformance(b *testing.B) { transporttest.Benchmark(b, newHarness) }
