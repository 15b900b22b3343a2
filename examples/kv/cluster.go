package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
)

// runCluster runs a local cluster, every node in this process on the
// loopback interface, until ctx ends (Ctrl-C) or a node fails. Each node is
// built exactly as kv serve builds it; its data lives in DATA/nodeN, so a
// second run finds the same data.
func runCluster(ctx context.Context, cfg clusterConfig, logger *slog.Logger, stdout io.Writer) error {
	members := cfg.members()
	// Every node listens before any starts, so none dials a peer that is
	// not there yet.
	var nodes []*node
	for i, m := range members {
		n, err := openNode(nodeConfig{
			id: m.ID, members: members, dataDir: nodeDir(cfg.dataDir, m.ID),
			http:   net.JoinHostPort(cfg.host, strconv.Itoa(cfg.httpPort+i)),
			logger: logger, nodeFlags: cfg.nodeFlags,
		})
		if err != nil {
			for _, opened := range nodes {
				opened.closeAll()
			}
			return fmt.Errorf("node %d: %w", m.ID, err)
		}
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		n.start()
	}
	printBanner(stdout, cfg, nodes)
	err := waitAndStop(ctx, logger, nodes...)
	if err == nil {
		fmt.Fprintf(stdout, "kv: stopped; the data stays in %s\n", cfg.dataDir)
	}
	return err
}

// printBanner tells the user where the nodes are and what to try.
func printBanner(w io.Writer, cfg clusterConfig, nodes []*node) {
	var b strings.Builder
	fmt.Fprintf(&b, "Synod kv: a %d-node cluster on %s (Ctrl-C stops it; the data in %s is kept)\n\n", len(nodes), cfg.host, cfg.dataDir)
	var urls []string
	for _, n := range nodes {
		fmt.Fprintf(&b, "  node %d  %-24s paxos %-18s data %s\n", n.cfg.id, n.URL(), n.tcpSrv.Addr(), n.cfg.dataDir)
		urls = append(urls, n.URL())
	}
	at := func(i int) string { return urls[i%len(urls)] }
	fmt.Fprintf(&b, "\nTry (any node answers):\n")
	fmt.Fprintf(&b, "  curl -X PUT  -d 'hello' %s/kv/greeting\n", at(0))
	fmt.Fprintf(&b, "  curl -X POST -d ', world' %s/kv/greeting\n", at(1))
	fmt.Fprintf(&b, "  curl %s/kv/greeting\n", at(2))
	fmt.Fprintf(&b, "\nStatus: curl %s/status   Metrics: curl %s/metrics\n", at(0), at(0))
	if cfg.httpPort != defaultHTTPPort || len(nodes) != 3 {
		fmt.Fprintf(&b, "Client: go run ./examples/kv get greeting --nodes %s\n", strings.Join(urls, ","))
	} else {
		fmt.Fprintf(&b, "Client: go run ./examples/kv get greeting    Load: go run ./examples/kv bench\n")
	}
	io.WriteString(w, b.String())
}
