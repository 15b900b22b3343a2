//go:build !linux

package main

import "os/exec"

// dieWithParent: only Linux has a parent-death signal; elsewhere the
// test's cleanup kills the nodes.
func dieWithParent(cmd *exec.Cmd) {}
