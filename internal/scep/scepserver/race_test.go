//go:build race

package scepserver_test

const raceEnabled = true
