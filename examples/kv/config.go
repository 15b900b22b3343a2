package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/synod-go/synod/kvstore"
	"github.com/synod-go/synod/paxos"
	"github.com/synod-go/synod/transport/tcp"
)

// Defaults of the flags.
const (
	defaultPaxosPort      = 7001
	defaultHTTPPort       = 8001
	defaultDataDir        = "kv-data"
	defaultClusterName    = "kv"
	defaultMaxValue       = 64 << 10
	maxMaxValue           = 1 << 20
	defaultRequestTimeout = 5 * time.Second
)

// nodeFlags are the flags a node takes, in a local cluster and in serve.
type nodeFlags struct {
	cluster        string // names the cluster in each database's identity
	logLevel       slog.Level
	maxKey         int
	maxValue       int
	requestTimeout time.Duration
	snapshotEvery  int
	pprof          bool
}

func (f *nodeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.cluster, "cluster", defaultClusterName, "cluster `name`, stored in each node's database (a node refuses another cluster's or node's data)")
	fs.TextVar(&f.logLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn or error")
	fs.IntVar(&f.maxKey, "max-key", kvstore.DefaultMaxKeySize, "largest key, in `bytes` (larger: 413)")
	fs.IntVar(&f.maxValue, "max-value", defaultMaxValue, fmt.Sprintf("largest value of a put or append, in `bytes` (larger: 413; at most %d)", maxMaxValue))
	fs.DurationVar(&f.requestTimeout, "request-timeout", defaultRequestTimeout, "how long an HTTP request waits for the cluster before 503")
	fs.IntVar(&f.snapshotEvery, "snapshot-every", kvstore.DefaultSnapshotEvery, "take a snapshot (and compact the log) every this many `slots`")
	fs.BoolVar(&f.pprof, "pprof", false, "serve net/http/pprof under /debug/pprof/ on the HTTP address")
}

func (f *nodeFlags) validate() error {
	var errs []error
	if f.cluster == "" {
		errs = append(errs, errors.New("-cluster must not be empty"))
	}
	if f.maxKey < 1 {
		errs = append(errs, errors.New("-max-key must be at least 1"))
	}
	if f.maxValue < 1 || f.maxValue > maxMaxValue {
		errs = append(errs, fmt.Errorf("-max-value must be in [1, %d]", maxMaxValue))
	}
	if f.requestTimeout <= 0 {
		errs = append(errs, errors.New("-request-timeout must be positive"))
	}
	if f.snapshotEvery < 1 {
		errs = append(errs, errors.New("-snapshot-every must be at least 1"))
	}
	return errors.Join(errs...)
}

// clusterConfig configures the local cluster (kv with no command).
type clusterConfig struct {
	nodes     int
	dataDir   string
	host      string
	paxosPort int // node i (from 1) listens on paxosPort+i-1
	httpPort  int
	nodeFlags
}

// serveConfig configures one node (kv serve).
type serveConfig struct {
	id      paxos.NodeID
	members []paxos.Member // every member, this node included
	listen  string         // the paxos listen address (default: this node's member address)
	dataDir string
	http    string
	tlsCA   string
	tlsCert string
	tlsKey  string
	nodeFlags
}

// clientConfig configures kv get, put and append.
type clientConfig struct {
	op       string // "get", "put" or "append"
	key      string
	value    string
	hasValue bool // false: read the value from stdin
	nodes    []string
	timeout  time.Duration
}

// benchConfig configures kv bench.
type benchConfig struct {
	nodes     []string
	clients   int
	duration  time.Duration
	valueSize int
	readRatio float64
	keys      int
	timeout   time.Duration
	seed      int64
	json      bool
}

// certsConfig configures kv certs.
type certsConfig struct {
	dir   string
	names []string
}

func parseCertsArgs(args []string, out io.Writer) (certsConfig, error) {
	var c certsConfig
	fs := newFlagSet("kv certs", out)
	fs.StringVar(&c.dir, "dir", "kv-certs", "`directory` to write ca.crt, NAME.crt and NAME.key to")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: kv certs [--dir DIR] NAME...\n\nWrites a throwaway CA and a certificate per node (valid for 127.0.0.1, ::1, localhost and NAME),\nfor kv serve --tls-ca DIR/ca.crt --tls-cert DIR/NAME.crt --tls-key DIR/NAME.key. Not for production.\n\n")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return c, err
	}
	if len(pos) == 0 {
		return c, errors.New("want at least one node NAME")
	}
	if c.dir == "" {
		return c, errors.New("-dir must not be empty")
	}
	c.names = pos
	return c, nil
}

func newFlagSet(name string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	return fs
}

// parseInterspersed parses args with fs, allowing flags after positional
// arguments ("kv get KEY --nodes ..."), and returns the positional ones.
// "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func parseClusterArgs(args []string, out io.Writer) (clusterConfig, error) {
	c := clusterConfig{host: "127.0.0.1"}
	fs := newFlagSet("kv", out)
	fs.IntVar(&c.nodes, "n", 3, "number of `nodes` (1 to 9)")
	fs.StringVar(&c.dataDir, "data", defaultDataDir, "`directory` of the nodes' data (node N keeps its own in DIR/nodeN)")
	fs.IntVar(&c.paxosPort, "paxos-port", defaultPaxosPort, "first paxos (transport/tcp) `port`; node N listens on port+N-1")
	fs.IntVar(&c.httpPort, "http-port", defaultHTTPPort, "first HTTP `port`; node N serves on port+N-1")
	c.nodeFlags.register(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: kv [flags]\n\nStarts a local cluster of nodes in this process, on 127.0.0.1. Other commands: kv serve|get|put|append|bench -h.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unknown command %q (want serve, get, put, append or bench)", fs.Arg(0))
	}
	var errs []error
	if c.nodes < 1 || c.nodes > 9 {
		errs = append(errs, errors.New("-n must be in [1, 9]"))
	}
	if c.dataDir == "" {
		errs = append(errs, errors.New("-data must not be empty"))
	}
	for _, p := range []struct {
		name string
		port int
	}{{"-paxos-port", c.paxosPort}, {"-http-port", c.httpPort}} {
		if p.port < 1 || p.port+c.nodes-1 > 65535 {
			errs = append(errs, fmt.Errorf("%s: ports %d to %d are out of range", p.name, p.port, p.port+c.nodes-1))
		}
	}
	if c.paxosPort < c.httpPort+c.nodes && c.httpPort < c.paxosPort+c.nodes {
		errs = append(errs, errors.New("-paxos-port and -http-port ranges overlap"))
	}
	errs = append(errs, c.nodeFlags.validate())
	return c, errors.Join(errs...)
}

// members returns the local cluster's membership.
func (c *clusterConfig) members() []paxos.Member {
	ms := make([]paxos.Member, c.nodes)
	for i := range ms {
		ms[i] = paxos.Member{ID: paxos.NodeID(i + 1), Addr: net.JoinHostPort(c.host, strconv.Itoa(c.paxosPort+i))}
	}
	return ms
}

func parseServeArgs(args []string, out io.Writer) (serveConfig, error) {
	var c serveConfig
	var id uint
	var peers string
	fs := newFlagSet("kv serve", out)
	fs.UintVar(&id, "id", 0, "this node's `id` (1 to 65535), one of -peers")
	fs.StringVar(&peers, "peers", "", "every member of the cluster, this node included: `id=host:port,...` (paxos transport addresses)")
	fs.StringVar(&c.listen, "listen", "", "paxos listen `address` (default: this node's address in -peers)")
	fs.StringVar(&c.dataDir, "data", "", "data `directory` of this node (required)")
	fs.StringVar(&c.http, "http", "", "HTTP listen `address`, e.g. 127.0.0.1:8001 (required)")
	fs.StringVar(&c.tlsCA, "tls-ca", "", "PEM `file` of the CA that signs the members' certificates (turns on mutual TLS)")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "PEM `file` of this node's certificate")
	fs.StringVar(&c.tlsKey, "tls-key", "", "PEM `file` of this node's key")
	c.nodeFlags.register(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: kv serve --id N --peers id=host:port,... --data DIR --http ADDR [--tls-ca F --tls-cert F --tls-key F]\n\nRuns one node of a cluster.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	members, err := parsePeers(peers)
	if err != nil {
		errs = append(errs, fmt.Errorf("-peers: %w", err))
	}
	c.members = members
	switch {
	case id < 1 || id > 65535:
		errs = append(errs, errors.New("-id must be in [1, 65535]"))
	case err == nil && !slices.ContainsFunc(members, func(m paxos.Member) bool { return m.ID == paxos.NodeID(id) }):
		errs = append(errs, fmt.Errorf("-id %d is not in -peers", id))
	}
	c.id = paxos.NodeID(id)
	if c.dataDir == "" {
		errs = append(errs, errors.New("-data is required"))
	}
	if c.http == "" {
		errs = append(errs, errors.New("-http is required"))
	} else if _, _, err := net.SplitHostPort(c.http); err != nil {
		errs = append(errs, fmt.Errorf("-http: %w", err))
	}
	if n := countSet(c.tlsCA, c.tlsCert, c.tlsKey); n != 0 && n != 3 {
		errs = append(errs, errors.New("-tls-ca, -tls-cert and -tls-key go together"))
	}
	errs = append(errs, c.nodeFlags.validate())
	return c, errors.Join(errs...)
}

func countSet(ss ...string) int {
	n := 0
	for _, s := range ss {
		if s != "" {
			n++
		}
	}
	return n
}

// parsePeers parses "id=addr,id=addr,..." into members sorted by id.
func parsePeers(s string) ([]paxos.Member, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("no members")
	}
	var ms []paxos.Member
	ids := make(map[paxos.NodeID]bool)
	addrs := make(map[string]bool)
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		idStr, addr, ok := strings.Cut(part, "=")
		if !ok || addr == "" {
			return nil, fmt.Errorf("%q: want id=host:port", part)
		}
		id, err := strconv.ParseUint(idStr, 10, 16)
		if err != nil || id == 0 {
			return nil, fmt.Errorf("%q: the id must be in [1, 65535]", part)
		}
		if _, _, err := tcp.ParseAddr(addr); err != nil {
			return nil, fmt.Errorf("%q: %w", part, err)
		}
		if ids[paxos.NodeID(id)] {
			return nil, fmt.Errorf("id %d appears twice", id)
		}
		if addrs[addr] {
			return nil, fmt.Errorf("address %s appears twice", addr)
		}
		ids[paxos.NodeID(id)], addrs[addr] = true, true
		ms = append(ms, paxos.Member{ID: paxos.NodeID(id), Addr: addr})
	}
	slices.SortFunc(ms, func(a, b paxos.Member) int { return int(a.ID) - int(b.ID) })
	return ms, nil
}

// defaultNodeURLs are the HTTP URLs of a default local cluster.
func defaultNodeURLs() string {
	var us []string
	for i := range 3 {
		us = append(us, fmt.Sprintf("http://127.0.0.1:%d", defaultHTTPPort+i))
	}
	return strings.Join(us, ",")
}

// parseNodes parses a comma-separated list of HTTP base URLs ("host:port"
// is taken as http://host:port).
func parseNodes(s string) ([]string, error) {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if !strings.Contains(part, "://") {
			part = "http://" + part
		}
		u, err := url.Parse(part)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", part, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return nil, fmt.Errorf("%q: want http://host:port", part)
		}
		out = append(out, u.Scheme+"://"+u.Host)
	}
	if len(out) == 0 {
		return nil, errors.New("no nodes")
	}
	return out, nil
}

func parseClientArgs(op string, args []string, out io.Writer) (clientConfig, error) {
	c := clientConfig{op: op}
	var nodes string
	fs := newFlagSet("kv "+op, out)
	fs.StringVar(&nodes, "nodes", defaultNodeURLs(), "HTTP `URLs` of the nodes, tried in turn")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "time allowed per node")
	usage := "KEY"
	if op != "get" {
		usage = "KEY [VALUE]"
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: kv %s %s [--nodes URL,...]\n", op, usage)
		if op != "get" {
			fmt.Fprint(fs.Output(), "Without VALUE, the value is read from standard input.\n")
		}
		fmt.Fprintln(fs.Output())
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return c, err
	}
	maxPos := 2
	if op == "get" {
		maxPos = 1
	}
	if len(pos) < 1 || len(pos) > maxPos {
		return c, fmt.Errorf("want kv %s %s", op, usage)
	}
	c.key = pos[0]
	if len(pos) == 2 {
		c.value, c.hasValue = pos[1], true
	}
	if c.key == "" {
		return c, errors.New("empty key")
	}
	if c.timeout <= 0 {
		return c, errors.New("-timeout must be positive")
	}
	c.nodes, err = parseNodes(nodes)
	return c, err
}

func parseBenchArgs(args []string, out io.Writer) (benchConfig, error) {
	var c benchConfig
	var nodes string
	fs := newFlagSet("kv bench", out)
	fs.StringVar(&nodes, "nodes", defaultNodeURLs(), "HTTP `URLs` of the nodes; client i starts at node i mod n and moves on after an error")
	fs.IntVar(&c.clients, "clients", 16, "concurrent `clients`, each with one request outstanding")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long to run (at most 1h)")
	fs.IntVar(&c.valueSize, "value-size", 128, "value size of each put, in `bytes`")
	fs.Float64Var(&c.readRatio, "read-ratio", 0.5, "fraction of operations that are gets, in [0, 1]; the rest are puts")
	fs.IntVar(&c.keys, "keys", 1000, "number of distinct `keys`, chosen uniformly")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "timeout of one request")
	fs.Int64Var(&c.seed, "seed", 1, "seed of the key and operation choices")
	fs.BoolVar(&c.json, "json", false, "print the result as JSON (and no live progress)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: kv bench [flags]\n\nLoad generator against the HTTP API of running nodes.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	var err error
	if c.nodes, err = parseNodes(nodes); err != nil {
		errs = append(errs, fmt.Errorf("-nodes: %w", err))
	}
	if c.clients < 1 || c.clients > 4096 {
		errs = append(errs, errors.New("-clients must be in [1, 4096]"))
	}
	if c.duration <= 0 || c.duration > time.Hour {
		errs = append(errs, errors.New("-duration must be in (0, 1h]"))
	}
	if c.valueSize < 1 || c.valueSize > maxMaxValue {
		errs = append(errs, fmt.Errorf("-value-size must be in [1, %d]", maxMaxValue))
	}
	if !(c.readRatio >= 0 && c.readRatio <= 1) {
		errs = append(errs, errors.New("-read-ratio must be in [0, 1]"))
	}
	if c.keys < 1 {
		errs = append(errs, errors.New("-keys must be at least 1"))
	}
	if c.timeout <= 0 {
		errs = append(errs, errors.New("-timeout must be positive"))
	}
	return c, errors.Join(errs...)
}
