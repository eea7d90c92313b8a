//go:build !unix

package filetrust

import "os"

// Owner is not known where there are no Unix user ids: nothing is
// refused for its owner.
func Owner(fi os.FileInfo) (uid int, ok bool) { return 0, false }

// Group is not known where there are no Unix group ids.
func Group(fi os.FileInfo) (gid int, ok bool) { return 0, false }
