//go:build race

package scep_test

const raceEnabled = true
