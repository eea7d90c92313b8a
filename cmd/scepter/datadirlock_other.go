//go:build !unix

package main

import "errors"

// errNoLocks: see datadirlock_unix.go.
var errNoLocks = errors.New("file locks are not available here: nothing keeps a second 'scepter serve' off the data directory; run one only")

// lockDataDir takes no lock where flock is not available.
func lockDataDir(string) (func(), error) { return func() {}, errNoLocks }

// shareStore takes no lock where flock is not available.
func shareStore(string) (func(), error) { return func() {}, nil }

// lockStore takes no lock where flock is not available.
func lockStore(string) (func(), error) { return func() {}, errNoLocks }
