package kvstore_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/synod-go/synod/kvstore"
	"github.com/synod-go/synod/log"
	"github.com/synod-go/synod/paxos"
	"github.com/synod-go/synod/transport"
	"github.com/synod-go/synod/transport/mem"
)

// Three replicas on an in-process network, and a client that may talk to
// any of them.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	network := mem.NewNetwork(mem.Options{})
	defer network.Close()
	members := []paxos.Member{{ID: 1, Addr: "a"}, {ID: 2, Addr: "b"}, {ID: 3, Addr: "c"}}

	runCtx, stop := context.WithCancel(ctx)
	stopped := make(chan struct{}, 2*len(members))
	defer func() {
		stop()
		for range 2 * len(members) {
			<-stopped
		}
	}()
	var addrs []string
	for _, m := range members {
		addrs = append(addrs, m.Addr)
	}
	for _, m := range members {
		pcfg := &paxos.Config{
			ID:          m.ID,
			PromiseLog:  log.NewMemory(),
			AcceptedLog: log.NewMemory(),
			RecordedLog: log.NewMemory(),
			Volatile:    true, // memory logs: fine for an example; use log.Badger for a real node
		}
		pcfg.DialTransport(network.Dialer(m.Addr))
		node, err := paxos.New(pcfg)
		if err != nil {
			fmt.Println(err)
			return
		}
		var peers []string
		for _, a := range addrs {
			if a != m.Addr {
				peers = append(peers, a)
			}
		}
		srv, err := kvstore.NewServer(node, kvstore.Config{
			Snapshots: log.NewMemory(), // a prefix of the node's log.Badger database for a real node
			Peers:     peers,
			Dialer:    network.Dialer(m.Addr),
		})
		if err != nil {
			fmt.Println(err)
			return
		}
		mux := transport.NewMux()
		paxos.Register(mux, node)
		kvstore.Register(mux, srv)
		if _, err := network.Listen(m.Addr, mux); err != nil {
			fmt.Println(err)
			return
		}
		go func() { node.Start(runCtx, members); stopped <- struct{}{} }()
		go func() { srv.Run(runCtx); stopped <- struct{}{} }()
	}

	client, err := kvstore.NewClient(kvstore.ClientConfig{Dialer: network.Dialer("client"), Servers: addrs})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()
	if err := client.Append(ctx, "greeting", []byte("hello, ")); err != nil {
		fmt.Println(err)
		return
	}
	if err := client.Append(ctx, "greeting", []byte("world")); err != nil {
		fmt.Println(err)
		return
	}
	v, err := client.Get(ctx, "greeting")
	fmt.Printf("%s %v\n", v, err)
	_, err = client.Get(ctx, "nothing")
	fmt.Println(errors.Is(err, kvstore.ErrNoKey))
	// Output:
	// hello, world <nil>
	// true
}
