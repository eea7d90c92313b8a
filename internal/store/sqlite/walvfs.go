package sqlite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"modernc.org/libc"
	lib "modernc.org/sqlite/lib"
)

// A WAL commit written in one system call instead of two per page. SQLite
// writes each frame of its write-ahead log with two write(2) calls, the
// frame's 24-byte header and then its page, so a commit that touches 20
// pages (a certificate, its indexes, its audit events) makes 40 of them.
// Measured with strace at concurrency 8 on one core: 34.7 pwrite(2) per
// enrollment before, 3.3 with this VFS, and the server's kernel CPU per
// enrollment 15–25% lower (BENCHMARKS.md).
//
// walVFSName is the platform's default VFS with one change, to the log
// files only: their writes are gathered in memory, in order, and written
// out together before anything can depend on them:
//
//   - when the page of a commit frame is in (a frame's header says it
//     commits: a nonzero database size). So a commit's frames are in the
//     file before SQLite returns from writing them, and so before it
//     publishes them to readers in the WAL index or syncs;
//   - before the log's sync, read, truncation, size, file control or close;
//   - before a write that does not follow on from the gathered ones
//     (SQLite rewriting a frame it wrote earlier, or a new log header);
//   - when the next write would not fit in maxWALGather.
//
// A safety net stands behind the first rule: SQLite passes the database
// file's shared-memory barrier before it publishes frames in the WAL index,
// and there the connection's own log writes out anything it still holds
// (netFlushes counts these; the tests require none in normal use and check
// that the net works when commit frames are not detected).
//
// What reaches the disk, and when it is synced, is unchanged: the same
// bytes at the same offsets, the sync after all of them. A process that
// dies with frames gathered loses only frames of a commit that had not
// returned, which SQLite's recovery would discard anyway (it keeps the log
// up to its last complete commit).
const walVFSName = "scepter-wal"

const (
	walFrameHeaderSize = 24
	// maxWALGather bounds what is gathered: SQLite's unix VFS masks the
	// length of a write to 17 bits (seekAndWriteFd), so a longer one
	// would come up short and fail as SQLITE_FULL. It holds 31 frames of
	// 4 KiB pages.
	maxWALGather = 1<<17 - 1
)

type (
	ioMethods = lib.Tsqlite3_io_methods // sqlite3_io_methods
	vfsStruct = lib.Tsqlite3_vfs        // sqlite3_vfs
)

// Everything SQLite is handed a pointer to (the VFS, the method tables, the
// gathered frames) is C memory, from modernc's libc: the transpiled SQLite
// does arithmetic on those pointers, which Go's pointer checks refuse on Go
// memory, and Go's collector cannot see them.

// walVFS is the registered VFS and the state its files share.
type walVFS struct {
	base uintptr // the default VFS, which opens every file

	mu sync.Mutex
	// tables holds the method tables made for each of the default VFS's
	// own tables, keyed by the address of that table. SQLite keeps
	// pointers to them, so they are never freed.
	tables map[uintptr]*walTables

	logs sync.Map // open log files: sqlite3_file address -> *walLog

	gathering atomic.Int32 // logs holding frames not yet written

	// For the tests.
	flushes       atomic.Int64 // writes of gathered frames
	netFlushes    atomic.Int64 // of which by the barrier's safety net
	detectCommits atomic.Bool  // false only in the test of the net
}

// walTables are the replacement method tables for one of the default
// VFS's tables (own): for log files and for database files. Each is C
// memory; the database files' table is followed by the address of own, for
// dbShmBarrier.
type walTables struct {
	log, db, own uintptr
}

// walLog is an open log file.
type walLog struct {
	owner *libc.TLS  // the connection that opened it (one TLS per connection)
	own   *ioMethods // the file's own methods
	mu    sync.Mutex
	mem   uintptr // C memory of maxWALGather bytes for buf, from the first write
	buf   []byte  // gathered writes, from file offset off; within mem
	off   int64
	// commitPage is the file offset of the page of a commit frame whose
	// header is gathered; 0 when there is none.
	commitPage int64
	// failed is set when the safety net could not write frames that SQLite
	// was about to publish: every later write and sync of the log fails,
	// so nothing more is acknowledged on top of them.
	failed bool
}

// registeredWALVFS registers the VFS with SQLite once per process.
var registeredWALVFS = sync.OnceValues(registerWALVFS)

// theWALVFS is what SQLite's calls into the VFS find their state in: they
// carry only C arguments.
var theWALVFS atomic.Pointer[walVFS]

func registerWALVFS() (*walVFS, error) {
	tls := libc.NewTLS()
	defer tls.Close()
	base := lib.Xsqlite3_vfs_find(tls, 0)
	if base == 0 {
		return nil, errors.New("sqlite: no default VFS to build on")
	}
	name, err := libc.CString(walVFSName) // C memory, kept for the process
	if err != nil {
		return nil, fmt.Errorf("sqlite: registering VFS %s: %w", walVFSName, err)
	}
	v := &walVFS{base: base, tables: map[uintptr]*walTables{}}
	v.detectCommits.Store(true)
	p := libc.Xcalloc(tls, 1, libc.Tsize_t(unsafe.Sizeof(vfsStruct{}))) // C memory, never freed: SQLite keeps it
	if p == 0 {
		return nil, fmt.Errorf("sqlite: registering VFS %s: out of memory", walVFSName)
	}
	vfs := (*vfsStruct)(cptr(p))
	*vfs = *(*vfsStruct)(cptr(base))
	vfs.FpNext = 0
	vfs.FzName = name
	*(*func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32)(unsafe.Pointer(&vfs.FxOpen)) = walVFSOpen
	theWALVFS.Store(v)
	if rc := lib.Xsqlite3_vfs_register(tls, p, 0); rc != lib.SQLITE_OK {
		return nil, fmt.Errorf("sqlite: registering VFS %s: error %d", walVFSName, rc)
	}
	return v, nil
}

// cptr turns an address of C memory (modernc's libc) into a pointer.
func cptr(p uintptr) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Pointer(&p))
}

// walVFSOpen opens a file with the default VFS, then gives log files the
// methods that gather their writes and database files the barrier's
// safety net.
func walVFSOpen(tls *libc.TLS, _ uintptr, zName uintptr, pFile uintptr, flags int32, pOutFlags uintptr) int32 {
	v := theWALVFS.Load()
	base := (*vfsStruct)(cptr(v.base))
	xOpen := base.FxOpen
	rc := (*(*func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32)(unsafe.Pointer(&xOpen)))(tls, v.base, zName, pFile, flags, pOutFlags)
	file := (*lib.Tsqlite3_file)(cptr(pFile))
	if rc != lib.SQLITE_OK || file.FpMethods == 0 {
		return rc
	}
	t := v.tablesFor(tls, file.FpMethods)
	if t == nil {
		return rc // out of memory: the file keeps its own methods
	}
	switch {
	case flags&lib.SQLITE_OPEN_WAL != 0:
		v.logs.Store(pFile, &walLog{owner: tls, own: (*ioMethods)(cptr(t.own))})
		file.FpMethods = t.log
	case flags&lib.SQLITE_OPEN_MAIN_DB != 0:
		file.FpMethods = t.db
	}
	return rc
}

// tablesFor returns the replacement tables for the default VFS's table at
// own, making them the first time.
func (v *walVFS) tablesFor(tls *libc.TLS, own uintptr) *walTables {
	v.mu.Lock()
	defer v.mu.Unlock()
	if t := v.tables[own]; t != nil {
		return t
	}
	const size = unsafe.Sizeof(ioMethods{})
	mem := libc.Xmalloc(tls, libc.Tsize_t(2*size+unsafe.Sizeof(uintptr(0))))
	if mem == 0 {
		return nil
	}
	t := &walTables{log: mem, db: mem + size, own: own}
	o := (*ioMethods)(cptr(own))
	log, db := (*ioMethods)(cptr(t.log)), (*ioMethods)(cptr(t.db))
	*log, *db = *o, *o
	*(*uintptr)(cptr(t.db + size)) = own
	*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&log.FxClose)) = walClose
	*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&log.FxRead)) = walRead
	*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&log.FxWrite)) = walWrite
	*(*func(*libc.TLS, uintptr, int64) int32)(unsafe.Pointer(&log.FxTruncate)) = walTruncate
	*(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&log.FxSync)) = walSync
	*(*func(*libc.TLS, uintptr, uintptr) int32)(unsafe.Pointer(&log.FxFileSize)) = walFileSize
	*(*func(*libc.TLS, uintptr, int32, uintptr) int32)(unsafe.Pointer(&log.FxFileControl)) = walFileControl
	if o.FiVersion >= 2 && o.FxShmBarrier != 0 {
		*(*func(*libc.TLS, uintptr))(unsafe.Pointer(&db.FxShmBarrier)) = dbShmBarrier
	}
	v.tables[own] = t
	return t
}

// logAt returns the open log file at pFile.
func (v *walVFS) logAt(pFile uintptr) *walLog {
	l, _ := v.logs.Load(pFile)
	return l.(*walLog)
}

// rw calls an xRead or xWrite method.
func rw(method uintptr, tls *libc.TLS, pFile, buf uintptr, n int32, off int64) int32 {
	return (*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&method)))(tls, pFile, buf, n, off)
}

// flush writes the gathered frames with one call of the file's own xWrite.
// The caller holds l.mu.
func (l *walLog) flush(tls *libc.TLS, v *walVFS, pFile uintptr) int32 {
	if len(l.buf) == 0 {
		return lib.SQLITE_OK
	}
	rc := rw(l.own.FxWrite, tls, pFile, l.mem, int32(len(l.buf)), l.off)
	v.flushes.Add(1)
	// Dropped even when the write failed: SQLite then fails the commit,
	// and frames past the log's last commit are never read.
	l.buf = l.buf[:0]
	l.commitPage = 0
	v.gathering.Add(-1)
	return rc
}

func walWrite(tls *libc.TLS, pFile uintptr, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	v := theWALVFS.Load()
	l := v.logAt(pFile)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed {
		return lib.SQLITE_IOERR_WRITE
	}
	// Decided before a flush to make room, which forgets commitPage.
	endsCommit := l.commitPage != 0 && iOfst == l.commitPage
	if len(l.buf) > 0 && (iOfst != l.off+int64(len(l.buf)) || len(l.buf)+int(iAmt) > maxWALGather) {
		if rc := l.flush(tls, v, pFile); rc != lib.SQLITE_OK {
			return rc
		}
	}
	if int(iAmt) > maxWALGather {
		return rw(l.own.FxWrite, tls, pFile, zBuf, iAmt, iOfst) // written now: nothing to flush after
	}
	if l.mem == 0 {
		if l.mem = libc.Xmalloc(tls, maxWALGather); l.mem == 0 {
			return lib.SQLITE_NOMEM
		}
		// Flushed before it would outgrow mem, so append never moves it.
		l.buf = unsafe.Slice((*byte)(cptr(l.mem)), maxWALGather)[:0]
	}
	if len(l.buf) == 0 {
		l.off = iOfst
		v.gathering.Add(1)
	}
	data := unsafe.Slice((*byte)(cptr(zBuf)), int(iAmt))
	l.buf = append(l.buf, data...)
	switch {
	case iAmt == walFrameHeaderSize:
		// A frame header: bytes 4–7 hold the database's size in pages
		// after a commit, zero in other frames. (Pages are at least 512
		// bytes, so a 24-byte write is always a header.)
		if binary.BigEndian.Uint32(data[4:8]) != 0 && v.detectCommits.Load() {
			l.commitPage = iOfst + walFrameHeaderSize
		}
	case endsCommit:
		return l.flush(tls, v, pFile)
	}
	return lib.SQLITE_OK
}

// flushed writes out the log's gathered frames, then calls method, one of
// the file's own.
func flushed(tls *libc.TLS, pFile uintptr, method func(own *ioMethods) int32) int32 {
	v := theWALVFS.Load()
	l := v.logAt(pFile)
	l.mu.Lock()
	rc := l.flush(tls, v, pFile)
	if l.failed {
		rc = lib.SQLITE_IOERR_WRITE
	}
	l.mu.Unlock()
	if rc != lib.SQLITE_OK {
		return rc
	}
	return method(l.own)
}

func walRead(tls *libc.TLS, pFile uintptr, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	return flushed(tls, pFile, func(own *ioMethods) int32 {
		return rw(own.FxRead, tls, pFile, zBuf, iAmt, iOfst)
	})
}

func walTruncate(tls *libc.TLS, pFile uintptr, size int64) int32 {
	return flushed(tls, pFile, func(own *ioMethods) int32 {
		m := own.FxTruncate
		return (*(*func(*libc.TLS, uintptr, int64) int32)(unsafe.Pointer(&m)))(tls, pFile, size)
	})
}

func walSync(tls *libc.TLS, pFile uintptr, flags int32) int32 {
	return flushed(tls, pFile, func(own *ioMethods) int32 {
		m := own.FxSync
		return (*(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&m)))(tls, pFile, flags)
	})
}

func walFileSize(tls *libc.TLS, pFile uintptr, pSize uintptr) int32 {
	return flushed(tls, pFile, func(own *ioMethods) int32 {
		m := own.FxFileSize
		return (*(*func(*libc.TLS, uintptr, uintptr) int32)(unsafe.Pointer(&m)))(tls, pFile, pSize)
	})
}

func walFileControl(tls *libc.TLS, pFile uintptr, op int32, pArg uintptr) int32 {
	return flushed(tls, pFile, func(own *ioMethods) int32 {
		m := own.FxFileControl
		return (*(*func(*libc.TLS, uintptr, int32, uintptr) int32)(unsafe.Pointer(&m)))(tls, pFile, op, pArg)
	})
}

// walClose writes out what is gathered and closes the log, even when that
// write fails (SQLite expects xClose to close).
func walClose(tls *libc.TLS, pFile uintptr) int32 {
	v := theWALVFS.Load()
	l := v.logAt(pFile)
	l.mu.Lock()
	rc := l.flush(tls, v, pFile)
	if l.mem != 0 {
		libc.Xfree(tls, l.mem)
		l.mem, l.buf = 0, nil
	}
	l.mu.Unlock()
	v.logs.Delete(pFile)
	m := l.own.FxClose
	if crc := (*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&m)))(tls, pFile); rc == lib.SQLITE_OK {
		rc = crc
	}
	return rc
}

// dbShmBarrier is the safety net. SQLite passes the barrier before it
// publishes new frames in the WAL index, so the connection's own log must
// hold none then: it writes out any it does (counted in netFlushes). Other
// connections' logs are theirs to write.
func dbShmBarrier(tls *libc.TLS, pFile uintptr) {
	v := theWALVFS.Load()
	if v.gathering.Load() > 0 {
		v.logs.Range(func(p, l any) bool {
			if l := l.(*walLog); l.owner == tls {
				l.mu.Lock()
				if len(l.buf) > 0 {
					v.netFlushes.Add(1)
					if l.flush(tls, v, p.(uintptr)) != lib.SQLITE_OK {
						l.failed = true
					}
				}
				l.mu.Unlock()
			}
			return true
		})
	}
	// The file's methods are the db table of a walTables, followed by the
	// address of the file's own table (tablesFor).
	own := *(*uintptr)(cptr((*lib.Tsqlite3_file)(cptr(pFile)).FpMethods + unsafe.Sizeof(ioMethods{})))
	m := (*ioMethods)(cptr(own)).FxShmBarrier
	(*(*func(*libc.TLS, uintptr))(unsafe.Pointer(&m)))(tls, pFile)
}
