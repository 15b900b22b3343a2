package mem_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/synod-go/synod/transport"
	"github.com/synod-go/synod/transport/mem"
)

func Example() {
	ctx := context.Background()
	net := mem.NewNetwork(mem.Options{Seed: 1})
	defer net.Close()

	mux := transport.NewMux()
	mux.Handle("echo", func(_ context.Context, req []byte) ([]byte, error) { return req, nil })
	for _, addr := range []string{"n1", "n2", "n3"} {
		if _, err := net.Listen(addr, mux); err != nil {
			panic(err)
		}
	}
	conn, _ := net.Dialer("n1").Dial(ctx, "n3")

	reply, err := conn.Call(ctx, "echo", []byte("hello"))
	fmt.Printf("%s %v\n", reply, err)

	net.Partition([]string{"n1", "n2"}, []string{"n3"})
	_, err = conn.Call(ctx, "echo", []byte("hello"))
	fmt.Println(errors.Is(err, transport.ErrUnreachable))

	net.Heal()
	reply, err = conn.Call(ctx, "echo", []byte("again"))
	fmt.Printf("%s %v\n", reply, err)
	fmt.Println(net.Sent("n1"), net.Delivered("n3"), net.DeliveredRoute("echo"))
	// Output:
	// hello <nil>
	// true
	// again <nil>
	// 3 2 4
}
