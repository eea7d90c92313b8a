//go:build !unix

package main

// lockDataDir takes no lock where flock is not available.
func lockDataDir(string) (func(), error) { return func() {}, nil }
