package filetrust

import (
	"fmt"
	"io"
	"io/fs"
	"os"
)

// OpenRegular opens the file at path for reading, and refuses (closing it)
// what is no regular file: a named pipe, a device, a socket, a directory.
// The file is opened without blocking (openNonBlocking) and its kind is
// taken from the open file, so that a FIFO given as a config or secret
// file is refused at once rather than waiting, without end, for a writer,
// and nothing can be swapped in between the check and the open.
func OpenRegular(path string) (*os.File, error) {
	f, err := openNonBlocking(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, &NotRegularError{Path: path, Mode: fi.Mode()}
	}
	return f, nil
}

// ReadRegular is os.ReadFile for a regular file only (OpenRegular): /dev/zero
// would be read without end, and a FIFO would wait for a writer.
func ReadRegular(path string) ([]byte, error) {
	f, err := OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// NotRegularError refuses a file that is no regular file where one is read.
type NotRegularError struct {
	Path string
	Mode fs.FileMode
}

func (e *NotRegularError) Error() string {
	return fmt.Sprintf("%s is %s, not a regular file", e.Path, NonRegularKind(e.Mode))
}

// NonRegularKind names what a file that is no regular file is ("a named
// pipe"), for messages that refuse it.
func NonRegularKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "a special file"
}
