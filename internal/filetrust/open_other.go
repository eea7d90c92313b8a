//go:build !unix

package filetrust

import "os"

// openNonBlocking is os.Open where opening a file does not wait for a
// writer (no Unix FIFOs).
func openNonBlocking(path string) (*os.File, error) { return os.Open(path) }
