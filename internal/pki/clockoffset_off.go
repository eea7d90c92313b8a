//go:build !scepter_clockoffset

package pki

// clockOffset is zero outside the test-only scepter_clockoffset build.
const clockOffset = 0
