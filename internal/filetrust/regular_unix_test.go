//go:build unix

package filetrust

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ReadRegular reads a regular file, and refuses at once what is none: a
// FIFO (whose open would wait for a writer), a device (/dev/zero would be
// read without end), a directory. A missing file is fs.ErrNotExist.
func TestReadRegular(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(fifo, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, want string // want: the content, or the error
	}{
		{"regular file", file, "s3cret\n"},
		{"FIFO", fifo, fifo + " is a named pipe, not a regular file"},
		{"link to a FIFO", link, link + " is a named pipe, not a regular file"},
		{"character device", "/dev/zero", "/dev/zero is a character device, not a regular file"},
		{"directory", dir, dir + " is a directory, not a regular file"},
		{"missing", filepath.Join(dir, "missing"), "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			type result struct {
				data []byte
				err  error
			}
			done := make(chan result, 1)
			go func() {
				data, err := ReadRegular(tt.path)
				done <- result{data, err}
			}()
			var r result
			select {
			case r = <-done:
			case <-time.After(10 * time.Second):
				if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					w.Close() // lets the waiting open return
				}
				t.Fatalf("ReadRegular(%s) still waiting after 10s", tt.path)
			}
			switch {
			case r.err == nil && string(r.data) != tt.want:
				t.Errorf("read %q, want %q", r.data, tt.want)
			case r.err != nil && !strings.Contains(r.err.Error(), tt.want):
				t.Errorf("err = %v, want %q", r.err, tt.want)
			}
			var notRegular *NotRegularError
			if r.err != nil && !errors.As(r.err, &notRegular) && !errors.Is(r.err, fs.ErrNotExist) {
				t.Errorf("err = %v: neither a NotRegularError nor fs.ErrNotExist", r.err)
			}
		})
	}
}
