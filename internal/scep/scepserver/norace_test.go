//go:build !race

package scepserver_test

const raceEnabled = false
