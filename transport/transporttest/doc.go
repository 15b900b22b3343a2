// Package transporttest is the conformance suite that every transport.Dialer
// implementation must pass, and benchmarks to compare them.
//
// A transport's tests implement Harness, which starts and stops nodes, and
// run the suite against it:
//
//	func TestConformance(t *testing.T) {
//		transporttest.Run(t, func(t testing.TB) transporttest.Harness { return newHarness(t) })
//	}
//
//	func BenchmarkTransport(b *testing.B) {
//		transporttest.Benchmark(b, func(t testing.TB) transporttest.Harness { return newHarness(t) })
//	}
//
// The suite fixes what the docs of package transport say in prose: which
// error for which failure (errors.Is with the sentinels of package
// transport), that the caller's deadline and cancellation reach the remote
// handler, stream ordering and life cycle, size limits, and failing fast when
// a peer dies. It runs in a few seconds and waits for conditions with
// deadlines, never for fixed sleeps.
package transporttest
