package main

import (
	"errors"
	"flag"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/synod-go/synod/paxos"
)

func TestParsePeers(t *testing.T) {
	tests := []struct {
		in      string
		want    []paxos.Member
		wantErr string
	}{
		{in: "1=127.0.0.1:7001", want: []paxos.Member{{ID: 1, Addr: "127.0.0.1:7001"}}},
		{in: "3=c:1, 1=a:1 ,2=b:1", want: []paxos.Member{{ID: 1, Addr: "a:1"}, {ID: 2, Addr: "b:1"}, {ID: 3, Addr: "c:1"}}},
		{in: "1=unix:///run/kv.sock,65535=tcp://[::1]:7000", want: []paxos.Member{{ID: 1, Addr: "unix:///run/kv.sock"}, {ID: 65535, Addr: "tcp://[::1]:7000"}}},
		{in: "", wantErr: "no members"},
		{in: "  ", wantErr: "no members"},
		{in: "127.0.0.1:7001", wantErr: "want id=host:port"},
		{in: "1=", wantErr: "want id=host:port"},
		{in: "0=a:1", wantErr: "id must be in"},
		{in: "65536=a:1", wantErr: "id must be in"},
		{in: "x=a:1", wantErr: "id must be in"},
		{in: "-1=a:1", wantErr: "id must be in"},
		{in: "1=a:1,1=b:1", wantErr: "id 1 appears twice"},
		{in: "1=a:1,2=a:1", wantErr: "address a:1 appears twice"},
		{in: "1=a:1,", wantErr: "want id=host:port"},
	}
	for _, tt := range tests {
		got, err := parsePeers(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parsePeers(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("parsePeers(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseNodes(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{in: "http://127.0.0.1:8001", want: []string{"http://127.0.0.1:8001"}},
		{in: "127.0.0.1:8001, http://127.0.0.1:8002/ ,", want: []string{"http://127.0.0.1:8001", "http://127.0.0.1:8002"}},
		{in: "https://kv.example:443", want: []string{"https://kv.example:443"}},
		{in: "", wantErr: true},
		{in: ",,", wantErr: true},
		{in: "ftp://a:1", wantErr: true},
		{in: "http://a:1/kv", wantErr: true},
		{in: "http://a:1/?x=1", wantErr: true},
		{in: "http://", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseNodes(tt.in)
		if (err != nil) != tt.wantErr || (!tt.wantErr && !slices.Equal(got, tt.want)) {
			t.Errorf("parseNodes(%q) = %q, %v; want %q (error: %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseServeArgs(t *testing.T) {
	base := []string{"--id", "2", "--peers", "1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003", "--data", "d2", "--http", "127.0.0.1:8002"}
	c, err := parseServeArgs(base, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.id != 2 || len(c.members) != 3 || c.dataDir != "d2" || c.http != "127.0.0.1:8002" || c.listen != "" ||
		c.logLevel != slog.LevelInfo || c.requestTimeout != defaultRequestTimeout || c.maxValue != defaultMaxValue || c.pprof || c.cluster != "kv" {
		t.Errorf("parsed %+v", c)
	}
	c, err = parseServeArgs(append(slices.Clone(base), "-log-level", "debug", "-pprof", "-max-value", "100", "-request-timeout", "2s",
		"-tls-ca", "ca.crt", "-tls-cert", "n.crt", "-tls-key", "n.key", "-listen", "0.0.0.0:7002", "-cluster", "prod"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.logLevel != slog.LevelDebug || !c.pprof || c.maxValue != 100 || c.requestTimeout != 2*time.Second ||
		c.tlsCA != "ca.crt" || c.tlsKey != "n.key" || c.listen != "0.0.0.0:7002" || c.cluster != "prod" {
		t.Errorf("parsed %+v", c)
	}

	bad := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--peers", "1=a:1", "--data", "d", "--http", "h:1"}, "-id must be in"},
		{[]string{"--id", "4", "--peers", "1=a:1", "--data", "d", "--http", "h:1"}, "-id 4 is not in -peers"},
		{[]string{"--id", "1", "--data", "d", "--http", "h:1"}, "-peers: no members"},
		{[]string{"--id", "1", "--peers", "1=a:1", "--http", "h:1"}, "-data is required"},
		{[]string{"--id", "1", "--peers", "1=a:1", "--data", "d"}, "-http is required"},
		{[]string{"--id", "1", "--peers", "1=a:1", "--data", "d", "--http", "nohost"}, "-http:"},
		{append(slices.Clone(base), "--tls-ca", "ca.crt"), "go together"},
		{append(slices.Clone(base), "--max-value", "0"), "-max-value must be in"},
		{append(slices.Clone(base), "--max-value", "2000000"), "-max-value must be in"},
		{append(slices.Clone(base), "--max-key", "0"), "-max-key"},
		{append(slices.Clone(base), "--request-timeout", "0s"), "-request-timeout"},
		{append(slices.Clone(base), "--log-level", "loud"), "log-level"},
		{append(slices.Clone(base), "--cluster", ""), "-cluster"},
		{append(slices.Clone(base), "--snapshot-every", "0"), "-snapshot-every"},
		{append(slices.Clone(base), "extra"), "unexpected arguments"},
		{append(slices.Clone(base), "--nope"), "not defined"},
	}
	for _, tt := range bad {
		if _, err := parseServeArgs(tt.args, io.Discard); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("parseServeArgs(%q) = %v, want error containing %q", tt.args, err, tt.wantErr)
		}
	}
	if _, err := parseServeArgs([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
}

func TestParseClusterArgs(t *testing.T) {
	c, err := parseClusterArgs(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := []paxos.Member{{ID: 1, Addr: "127.0.0.1:7001"}, {ID: 2, Addr: "127.0.0.1:7002"}, {ID: 3, Addr: "127.0.0.1:7003"}}
	if got := c.members(); !slices.Equal(got, want) || c.dataDir != "kv-data" || c.httpPort != 8001 {
		t.Errorf("defaults: %+v, members %v", c, got)
	}
	if c, err = parseClusterArgs([]string{"-n", "5", "-paxos-port", "9000", "-http-port", "9100", "-data", "/tmp/x"}, io.Discard); err != nil {
		t.Fatal(err)
	}
	if ms := c.members(); len(ms) != 5 || ms[4].Addr != "127.0.0.1:9004" || c.dataDir != "/tmp/x" {
		t.Errorf("parsed %+v, members %v", c, ms)
	}
	for _, args := range [][]string{
		{"-n", "0"}, {"-n", "10"}, {"-data", ""}, {"-paxos-port", "0"}, {"-http-port", "65534"},
		{"-paxos-port", "8000", "-http-port", "8002"}, {"frobnicate"},
	} {
		if _, err := parseClusterArgs(args, io.Discard); err == nil {
			t.Errorf("parseClusterArgs(%q) accepted", args)
		}
	}
}

func TestParseClientArgs(t *testing.T) {
	tests := []struct {
		op   string
		args []string
		want clientConfig
	}{
		{"get", []string{"k"}, clientConfig{op: "get", key: "k", nodes: strings.Split(defaultNodeURLs(), ",")}},
		{"get", []string{"k", "--nodes", "a:1"}, clientConfig{op: "get", key: "k", nodes: []string{"http://a:1"}}},
		{"get", []string{"--nodes", "a:1", "k"}, clientConfig{op: "get", key: "k", nodes: []string{"http://a:1"}}},
		{"put", []string{"k", "v", "-nodes=a:1,b:2"}, clientConfig{op: "put", key: "k", value: "v", hasValue: true, nodes: []string{"http://a:1", "http://b:2"}}},
		{"put", []string{"k", "--nodes", "a:1", "--", "-v"}, clientConfig{op: "put", key: "k", value: "-v", hasValue: true, nodes: []string{"http://a:1"}}},
		{"append", []string{"k"}, clientConfig{op: "append", key: "k", nodes: strings.Split(defaultNodeURLs(), ",")}},
		{"append", []string{"a/b c", ""}, clientConfig{op: "append", key: "a/b c", hasValue: true, nodes: strings.Split(defaultNodeURLs(), ",")}},
	}
	for _, tt := range tests {
		got, err := parseClientArgs(tt.op, tt.args, io.Discard)
		tt.want.timeout = 10 * time.Second
		if err != nil || got.op != tt.want.op || got.key != tt.want.key || got.value != tt.want.value ||
			got.hasValue != tt.want.hasValue || !slices.Equal(got.nodes, tt.want.nodes) || got.timeout != tt.want.timeout {
			t.Errorf("parseClientArgs(%s, %q) = %+v, %v; want %+v", tt.op, tt.args, got, err, tt.want)
		}
	}
	for _, tt := range []struct {
		op   string
		args []string
	}{
		{"get", nil}, {"get", []string{"k", "v"}}, {"put", []string{"k", "v", "w"}}, {"get", []string{""}},
		{"get", []string{"k", "--nodes", ""}}, {"get", []string{"k", "--timeout", "0s"}}, {"get", []string{"k", "--bogus"}},
	} {
		if got, err := parseClientArgs(tt.op, tt.args, io.Discard); err == nil {
			t.Errorf("parseClientArgs(%s, %q) = %+v, want an error", tt.op, tt.args, got)
		}
	}
}

func TestParseBenchArgs(t *testing.T) {
	c, err := parseBenchArgs([]string{"-clients", "8", "-duration", "3s", "-value-size", "1000", "-read-ratio", "0.9", "-keys", "10", "-json", "-nodes", "127.0.0.1:1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.clients != 8 || c.duration != 3*time.Second || c.valueSize != 1000 || c.readRatio != 0.9 || c.keys != 10 || !c.json || c.nodes[0] != "http://127.0.0.1:1" {
		t.Errorf("parsed %+v", c)
	}
	for _, args := range [][]string{
		{"-clients", "0"}, {"-duration", "0s"}, {"-duration", "2h"}, {"-value-size", "0"}, {"-read-ratio", "1.5"},
		{"-read-ratio", "NaN"}, {"-keys", "0"}, {"-timeout", "-1s"}, {"-nodes", ""}, {"extra"},
	} {
		if _, err := parseBenchArgs(args, io.Discard); err == nil {
			t.Errorf("parseBenchArgs(%q) accepted", args)
		}
	}
}

func TestParseCertsArgs(t *testing.T) {
	c, err := parseCertsArgs([]string{"a", "--dir", "d", "b"}, io.Discard)
	if err != nil || c.dir != "d" || !slices.Equal(c.names, []string{"a", "b"}) {
		t.Errorf("parsed %+v, %v", c, err)
	}
	for _, args := range [][]string{nil, {"--dir", "d"}, {"a", "--dir", ""}} {
		if _, err := parseCertsArgs(args, io.Discard); err == nil {
			t.Errorf("parseCertsArgs(%q) accepted", args)
		}
	}
}

func TestRunExitCodes(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want int
	}{
		{[]string{"help"}, 0},
		{[]string{"serve", "-h"}, 0},
		{[]string{"frobnicate"}, 2},
		{[]string{"serve", "--id", "1"}, 2},
		{[]string{"get"}, 2},
		{[]string{"-n", "0"}, 2},
	} {
		if got := run(t.Context(), tt.args, strings.NewReader(""), io.Discard, io.Discard); got != tt.want {
			t.Errorf("run(%q) = %d, want %d", tt.args, got, tt.want)
		}
	}
}

func TestFrameSizeFitsABatch(t *testing.T) {
	for _, v := range []int{1, defaultMaxValue, maxMaxValue} {
		if got, need := frameSize(1024, v), paxosBatch*(1024+v); got < need {
			t.Errorf("frameSize(1024, %d) = %d, below a full batch of %d bytes", v, got, need)
		}
	}
}
