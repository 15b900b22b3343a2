package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/synod-go/synod/transport/tcp"
)

// shutdownTimeout bounds a clean shutdown after Ctrl-C; a second Ctrl-C
// kills the process at once.
const shutdownTimeout = 15 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills the process
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usage = `kv is Synod's replicated key/value store service.

Usage:
  kv [flags]                                   start a local cluster (3 nodes, 127.0.0.1, data in ./kv-data)
  kv serve --id N --peers id=host:port,... --data DIR --http ADDR [--tls-ca F --tls-cert F --tls-key F]
  kv get KEY [--nodes URL,...]
  kv put KEY [VALUE] [--nodes URL,...]          (VALUE from stdin when omitted)
  kv append KEY [VALUE] [--nodes URL,...]
  kv bench [--nodes URL,...] [--clients N] [--duration D] [--value-size B] [--read-ratio R] [--keys K] [--json]
  kv certs [--dir DIR] NAME...                  a throwaway CA and node certificates, for trying TLS

Run "kv COMMAND -h" for the flags of a command.
`

// run runs the command in args and returns the exit status: 0 success, 1
// failure, 2 bad usage.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var perr, err error // a command-line error, an error of the command
	switch cmd {
	case "", "cluster":
		var cfg clusterConfig
		if cfg, perr = parseClusterArgs(args, stderr); perr == nil {
			err = runCluster(ctx, cfg, newLogger(stderr, cfg.logLevel), stdout)
		}
	case "serve":
		var cfg serveConfig
		if cfg, perr = parseServeArgs(args, stderr); perr == nil {
			err = runServe(ctx, cfg, newLogger(stderr, cfg.logLevel), stdout)
		}
	case "get", "put", "append":
		var cfg clientConfig
		if cfg, perr = parseClientArgs(cmd, args, stderr); perr == nil {
			err = runClient(ctx, cfg, stdin, stdout)
		}
	case "bench":
		var cfg benchConfig
		if cfg, perr = parseBenchArgs(args, stderr); perr == nil {
			err = runBench(ctx, cfg, stdout, isTerminal(stdout))
		}
	case "certs":
		var cfg certsConfig
		if cfg, perr = parseCertsArgs(args, stderr); perr == nil {
			err = runCerts(cfg, stdout)
		}
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "kv: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	name := strings.TrimSpace("kv " + cmd)
	switch {
	case errors.Is(perr, flag.ErrHelp):
		return 0
	case perr != nil:
		fmt.Fprintf(stderr, "%s: %v\n(run %s -h for help)\n", name, perr, name)
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// isTerminal reports whether w is a terminal (for live progress).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// runServe runs one node until ctx ends or a part of it fails.
func runServe(ctx context.Context, cfg serveConfig, logger *slog.Logger, stdout io.Writer) error {
	ncfg := nodeConfig{
		id: cfg.id, members: cfg.members, listen: cfg.listen, dataDir: cfg.dataDir, http: cfg.http,
		logger: logger, nodeFlags: cfg.nodeFlags,
	}
	if cfg.tlsCA != "" {
		var err error
		if ncfg.tls, err = tcp.LoadTLSConfig(cfg.tlsCA, cfg.tlsCert, cfg.tlsKey); err != nil {
			return err
		}
	}
	n, err := startNode(ncfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "kv: node %d serving %s (paxos %s, data %s)\n", cfg.id, n.URL(), n.tcpSrv.Addr(), cfg.dataDir)
	return waitAndStop(ctx, logger, n)
}

// runCerts writes a throwaway CA and a certificate per node name.
func runCerts(cfg certsConfig, stdout io.Writer) error {
	if _, _, err := tcp.GenerateCluster(cfg.dir, cfg.names...); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: ca.crt", cfg.dir)
	for _, n := range cfg.names {
		fmt.Fprintf(stdout, ", %s.crt, %s.key", n, n)
	}
	fmt.Fprintln(stdout, "\n(a throwaway CA whose key is not kept: for trying TLS, not for production)")
	return nil
}

// waitAndStop waits for ctx to end or a node to fail, then shuts the nodes
// down together.
func waitAndStop(ctx context.Context, logger *slog.Logger, nodes ...*node) error {
	failed := make(chan error, len(nodes))
	stopWatch := make(chan struct{})
	for _, n := range nodes {
		go func() {
			select {
			case err := <-n.Failed():
				failed <- fmt.Errorf("node %d: %w", n.cfg.id, err)
			case <-stopWatch:
			}
		}()
	}
	var cause error
	select {
	case <-ctx.Done():
		logger.Info("shutting down (a second Ctrl-C kills the process)")
	case cause = <-failed:
		logger.Error("shutting down", "err", cause)
	}
	close(stopWatch)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	errs := make(chan error, len(nodes))
	for _, n := range nodes {
		go func() { errs <- n.Shutdown(sctx) }()
	}
	all := []error{cause}
	for range nodes {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}
