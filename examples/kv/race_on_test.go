//go:build race

package main

// raceEnabled: the test binary runs under the race detector, so the kv
// binary the end-to-end test builds does too (and reuses the build cache).
const raceEnabled = true
