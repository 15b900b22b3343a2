package paxos_test

import (
	"context"
	"fmt"
	"time"

	"github.com/synod-go/synod/log"
	"github.com/synod-go/synod/paxos"
	"github.com/synod-go/synod/transport"
	"github.com/synod-go/synod/transport/mem"
)

// Three nodes on an in-process network agree on a log; every node learns
// the values in slot order.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	network := mem.NewNetwork(mem.Options{Seed: 1})
	defer network.Close()
	members := []paxos.Member{{ID: 1, Addr: "a"}, {ID: 2, Addr: "b"}, {ID: 3, Addr: "c"}}

	var nodes []*paxos.Paxos
	stopped := make(chan struct{})
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	for _, m := range members {
		cfg := &paxos.Config{
			ID:          m.ID,
			PromiseLog:  log.NewMemory(),
			AcceptedLog: log.NewMemory(),
			RecordedLog: log.NewMemory(),
			Volatile:    true, // memory logs: fine for an example, not for a real node
		}
		cfg.DialTransport(network.Dialer(m.Addr))
		node, err := paxos.New(cfg)
		if err != nil {
			fmt.Println(err)
			return
		}
		mux := transport.NewMux()
		paxos.Register(mux, node)
		if _, err := network.Listen(m.Addr, mux); err != nil {
			fmt.Println(err)
			return
		}
		go func() {
			node.Start(runCtx, members)
			stopped <- struct{}{}
		}()
		nodes = append(nodes, node)
	}
	defer func() {
		stop()
		for range nodes {
			<-stopped
		}
	}()

	// Any node takes proposals; non-leaders forward them to the leader.
	for i, v := range []string{"x=1", "y=2", "x=3"} {
		if _, err := nodes[i].Propose(ctx, []byte(v)); err != nil {
			fmt.Println(err)
			return
		}
	}
	// Every node delivers the same values in the same order.
	var next paxos.Slot
	for next < 3 {
		chosen, err := nodes[2].Learn(ctx, next, 16)
		if err != nil {
			fmt.Println(err)
			return
		}
		for _, c := range chosen {
			if !c.NoOp {
				fmt.Printf("slot %d: %s\n", c.Slot, c.Value)
			}
			next = c.Slot + 1
		}
		nodes[2].Done(next - 1) // the application is done with these slots
	}
	// Output:
	// slot 0: x=1
	// slot 1: y=2
	// slot 2: x=3
}
