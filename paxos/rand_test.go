package paxos

import (
	"math/rand"
	"testing"
)

// seededRand returns a generator with a fresh seed, logged so that a
// failing run can be reproduced, and the seed for failure messages.
func seededRand(t *testing.T) (*rand.Rand, int64) {
	seed := int64(rand.Uint32())
	t.Logf("seed %d", seed)
	return rand.New(rand.NewSource(seed)), seed
}
