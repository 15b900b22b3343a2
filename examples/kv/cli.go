package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// errNoKey is what kv get reports for a key with no value.
var errNoKey = errors.New("no such key")

// runClient runs kv get, put or append against the HTTP API: it tries the
// nodes in turn until one answers. A get or put is retried on the next node
// after any failure (both are idempotent); an append only when the node
// could not be reached at all, since after a timeout or a lost connection it
// may have been applied.
func runClient(ctx context.Context, cfg clientConfig, stdin io.Reader, stdout io.Writer) error {
	value := []byte(cfg.value)
	if cfg.op != "get" && !cfg.hasValue {
		var err error
		if value, err = io.ReadAll(io.LimitReader(stdin, maxMaxValue+1)); err != nil {
			return fmt.Errorf("reading the value from stdin: %w", err)
		}
	}
	method := map[string]string{"get": http.MethodGet, "put": http.MethodPut, "append": http.MethodPost}[cfg.op]
	hc := &http.Client{Timeout: cfg.timeout}
	var errs []error
	for _, base := range cfg.nodes {
		var body io.Reader
		if method != http.MethodGet {
			body = bytes.NewReader(value)
		}
		req, err := http.NewRequestWithContext(ctx, method, base+"/kv/"+url.PathEscape(cfg.key), body)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if cfg.op == "append" && !notSent(err) {
				return fmt.Errorf("%w\nthe append may or may not have been applied; not retrying it on another node", errors.Join(errs...))
			}
			continue
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, maxMaxValue+1))
		resp.Body.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: reading the answer: %w", base, err))
			continue
		}
		msg := strings.TrimSpace(string(data))
		switch resp.StatusCode {
		case http.StatusOK:
			stdout.Write(data)
			if isTerminal(stdout) && !bytes.HasSuffix(data, []byte("\n")) {
				fmt.Fprintln(stdout)
			}
			return nil
		case http.StatusNoContent:
			return nil
		case http.StatusNotFound:
			return fmt.Errorf("%q: %w", cfg.key, errNoKey)
		case http.StatusServiceUnavailable:
			errs = append(errs, fmt.Errorf("%s: %s: %s", base, resp.Status, msg))
			if cfg.op == "append" {
				return errors.Join(errs...)
			}
			continue
		}
		return fmt.Errorf("%s: %s: %s", base, resp.Status, msg)
	}
	return fmt.Errorf("no node answered:\n%w", errors.Join(errs...))
}

// notSent reports whether err says the request never reached the node
// (the connection could not be made).
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
