//go:build !scepter_clockoffset

package ca

// oddSerials is false outside the test-only scepter_clockoffset build.
const oddSerials = false
