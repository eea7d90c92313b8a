package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/audit"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/postgres/pgtest"
	"github.com/scepter/scepter/internal/store/sqlstore"
)

// cutter is a TCP proxy in front of the test database that, when armed,
// cuts the next connection that carries a COMMIT: before the COMMIT
// reaches the server (the transaction is rolled back) or after the server
// has committed, instead of passing its answer on. Either way the client
// loses the connection with its transaction sent, and cannot tell which
// happened. The fatal modes end the connection as the server does when
// an administrator terminates its backend (pg_terminate_backend): the
// client is told FATAL 57P01, at one of the points where the server can
// tell it so.
type cutter struct {
	ln net.Listener
	to string
	// armed is one of the modes below, or "" (pass everything).
	armed atomic.Value
	cuts  atomic.Int64
	// downAfter takes the database out of reach with the next cut: every
	// connection is closed and new ones are closed at once, until up.
	downAfter atomic.Bool
	down      atomic.Bool
	// endAllAfter ends every other connection with the next cut, as
	// pg_terminate_backend on all of a role's backends does: each client
	// is told FATAL 57P01. New connections are let through.
	endAllAfter atomic.Bool
	mu          sync.Mutex
	conns       map[net.Conn]net.Conn // client to server
	wg          sync.WaitGroup
}

const (
	cutQuery  = "query"
	cutAnswer = "answer"
	// fatalQuery passes the COMMIT on to no one and tells the client
	// FATAL: as a backend terminated while its connection sat in the
	// pool, before it read the transaction (nothing is committed).
	fatalQuery = "fatal instead of the query"
	// fatalAnswer tells the client FATAL in place of the COMMIT's
	// answer: the server committed.
	fatalAnswer = "fatal instead of the answer"
	// fatalAfterAnswer passes the COMMIT's answer on and tells the
	// client FATAL before the server's ReadyForQuery: the server
	// committed, and the client read that it did.
	fatalAfterAnswer = "fatal after the answer"
)

// adminShutdown is the ErrorResponse a backend sends when
// pg_terminate_backend ends it.
var adminShutdown = func() []byte {
	var fields []byte
	for _, f := range []string{"SFATAL", "VFATAL", "C57P01", "Mterminating connection due to administrator command"} {
		fields = append(append(fields, f...), 0)
	}
	fields = append(fields, 0)
	return append(binary.BigEndian.AppendUint32([]byte{'E'}, uint32(4+len(fields))), fields...)
}()

// fillPool opens every connection of s's pool and puts them back idle,
// and returns how many it holds.
func fillPool(t *testing.T, ctx context.Context, s *Store) int {
	t.Helper()
	var conns []interface{ Release() }
	for range s.pool.Config().MaxConns {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Release()
	}
	return len(conns)
}

// newCutter starts a cutter for the database dbURL and returns it with
// the URL through it.
func newCutter(t *testing.T, dbURL string) (*cutter, string) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{ln: ln, to: u.Host, conns: map[net.Conn]net.Conn{}}
	c.armed.Store("")
	c.wg.Add(1)
	go c.serve()
	t.Cleanup(func() {
		ln.Close()
		c.closeAll(nil)
		c.wg.Wait()
	})
	u.Host = ln.Addr().String()
	return c, u.String()
}

func (c *cutter) arm(mode string) { c.armed.Store(mode) }

// up lets connections through again after downAfter, and ends
// endAllAfter.
func (c *cutter) up() {
	c.downAfter.Store(false)
	c.down.Store(false)
	c.endAllAfter.Store(false)
}

// fire reports whether the armed mode is one of modes and, if so, disarms
// it: one cut per arming.
func (c *cutter) fire(modes ...string) (string, bool) {
	for _, mode := range modes {
		if c.armed.CompareAndSwap(mode, "") {
			c.cuts.Add(1)
			return mode, true
		}
	}
	return "", false
}

// track adds a connection to those closeAll closes, or reports false
// when the database is out of reach.
func (c *cutter) track(client, server net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down.Load() {
		return false
	}
	c.conns[client] = server
	return true
}

// closeAll closes every connection, each client told last (when not nil).
func (c *cutter) closeAll(last []byte) { c.closeAllBut(nil, last) }

// closeAllBut is closeAll for every connection but except's, which it
// only stops tracking: its pipe tells its client what the cut says and
// closes it.
func (c *cutter) closeAllBut(except net.Conn, last []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for client, server := range c.conns {
		delete(c.conns, client)
		if client == except {
			continue
		}
		if last != nil {
			_, _ = client.Write(last)
		}
		client.Close()
		server.Close()
	}
}

// cut ends the connection after a cut, and every other one as well when
// the database goes out of reach with it. It runs before the cut
// connection's client is told anything: told at once, the client runs its
// transaction again on a new connection, which an ending of the others
// that came after would end too, with FATAL in place of the answers to a
// transaction its server had committed, which no backend sends (CI105
// failed on that: a conflict on the rerun of an issuance taken for
// never run).
func (c *cutter) cut(client net.Conn) {
	switch {
	case c.downAfter.Load():
		c.mu.Lock()
		c.down.Store(true)
		c.mu.Unlock()
		c.closeAllBut(client, nil)
	case c.endAllAfter.Load():
		c.closeAllBut(client, adminShutdown)
	}
}

func (c *cutter) serve() {
	defer c.wg.Done()
	for {
		client, err := c.ln.Accept()
		if err != nil {
			return
		}
		if c.down.Load() {
			client.Close()
			continue
		}
		server, err := net.Dial("tcp", c.to)
		if err != nil {
			client.Close()
			continue
		}
		if !c.track(client, server) {
			client.Close()
			server.Close()
			continue
		}
		closeBoth := func() { client.Close(); server.Close() }
		c.wg.Add(2)
		// The query (pgx.Tx sends "commit") and CommandComplete's tag
		// are both NUL-terminated ("READ COMMITTED" does not match).
		go func() {
			defer c.wg.Done()
			c.pipe(client, server, client, []string{cutQuery, fatalQuery}, closeBoth)
		}()
		go func() {
			defer c.wg.Done()
			c.pipe(server, client, client, []string{cutAnswer, fatalAnswer, fatalAfterAnswer}, closeBoth)
		}()
	}
}

// pipe copies from src to dst, unless one of modes is armed when what it
// reads holds a COMMIT: then it does what the mode says to the client and
// closes both connections.
func (c *cutter) pipe(src, dst, client net.Conn, modes []string, closeBoth func()) {
	defer closeBoth()
	marker := []byte("COMMIT\x00")
	buf := make([]byte, 64<<10)
	var tail []byte // the end of the last read, for a marker split in two
	for {
		n, err := src.Read(buf)
		if n > 0 {
			seen := append(tail, buf[:n]...)
			if i := bytes.Index(bytes.ToUpper(seen), marker); i >= 0 {
				if mode, ok := c.fire(modes...); ok {
					c.cut(client)
					// i in buf: what of seen came before buf was
					// passed on already.
					i -= len(tail)
					switch mode {
					case fatalQuery:
						_, _ = client.Write(adminShutdown)
					case fatalAnswer:
						// CommandComplete: 'C', its length, the tag.
						_, _ = dst.Write(buf[:max(0, i-5)])
						_, _ = dst.Write(adminShutdown)
					case fatalAfterAnswer:
						_, _ = dst.Write(buf[:i+len(marker)])
						_, _ = dst.Write(adminShutdown)
					}
					closeBoth()
					return
				}
			}
			tail = append([]byte(nil), seen[max(0, len(seen)-len(marker)):]...)
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestLostConnectionAtCommit: an issuance whose connection is lost with its
// transaction sent, committed or not, is recorded once and reported
// recorded: the caller is not told of a failure for a certificate the
// database holds (its one-time challenge used up, or the certificate it
// renews revoked), nor is the certificate recorded twice.
func TestLostConnectionAtCommit(t *testing.T) {
	ctx := context.Background()
	dbURL := pgtest.WithParam(t, migrated.Database(t), "pool_max_conns", testPoolSize)
	cut, through := newCutter(t, dbURL)
	s, err := Open(ctx, through)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	serial := 0
	next := func() (*store.Issuance, issuanceRows) {
		serial++
		in, rows := plainIssuance(now, fmt.Sprintf("1057%02x", serial), "default", 365)
		in.Certificate.DER = []byte{0x30, 1, byte(serial)}
		return in, rows
	}
	challenge := func(id string) []byte {
		ch := pki.Challenge{ID: id, Hash: []byte("hash-" + id), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := s.CreateChallenge(ctx, ch, pki.AuditEvent{Type: pki.EventChallengeCreated}); err != nil {
			t.Fatal(err)
		}
		return ch.Hash
	}
	var renewed string
	modes := []string{cutAnswer, cutQuery, fatalQuery, fatalAnswer, fatalAfterAnswer}
	for _, mode := range modes {
		t.Run("a single issuance, cut at the "+mode, func(t *testing.T) {
			in, _ := next()
			in.ConsumeChallengeHash = challenge("single-" + mode)
			cut.arm(mode)
			if err := s.RecordIssuance(ctx, *in); err != nil {
				t.Errorf("RecordIssuance: %v", err)
			}
			if cut.armed.Load() != "" {
				t.Fatal("the connection was not cut")
			}
		})
		t.Run("a batch, cut at the "+mode, func(t *testing.T) {
			var batch []*issueRequest
			for range 3 {
				in, rows := next()
				batch = append(batch, &issueRequest{ctx: ctx, in: in, issued: rows, now: sqlstore.Micros(in.Now), done: make(chan error, 1)})
			}
			batch[1].in.ConsumeChallengeHash = challenge("batch-" + mode)
			cut.arm(mode)
			s.runIssues(batch)
			for i, r := range batch {
				if err := <-r.done; err != nil {
					t.Errorf("issuance %d: %v", i, err)
				}
			}
			if cut.armed.Load() != "" {
				t.Fatal("the connection was not cut")
			}
		})
		t.Run("a renewal that supersedes, cut at the "+mode, func(t *testing.T) {
			old, _ := next()
			if err := s.RecordIssuance(ctx, *old); err != nil {
				t.Fatal(err)
			}
			in, _ := next()
			in.Supersede = &store.CertRef{IssuerID: old.Certificate.IssuerID, SerialHex: old.Certificate.SerialHex}
			in.Certificate.RenewedFrom = old.Certificate.SerialHex
			renewed = old.Certificate.SerialHex
			cut.arm(mode)
			if err := s.RecordIssuance(ctx, *in); err != nil {
				t.Errorf("RecordIssuance: %v", err)
			}
			if cut.armed.Load() != "" {
				t.Fatal("the connection was not cut")
			}
			c, err := s.Certificate(ctx, old.Certificate.IssuerID, renewed)
			if err != nil || c.Status != pki.StatusRevoked {
				t.Errorf("the renewed certificate: %+v (%v), want revoked", c, err)
			}
		})
	}
	if n, want := cut.cuts.Load(), int64(3*len(modes)); n != want {
		t.Errorf("%d connections cut, want %d", n, want)
	}

	// Every certificate once, every challenge used once, and the chain
	// holds each issuance's event once.
	var certs, events int
	if err := s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM certificates), (SELECT count(*) FROM audit_events)`).Scan(&certs, &events); err != nil {
		t.Fatal(err)
	}
	// With the challenges' events (2 per mode) and the superseded
	// certificates' revocations (1 per mode): once each, though the
	// transactions were retried.
	wantEvents := serial + 3*len(modes)
	if certs != serial || events != wantEvents {
		t.Errorf("%d certificates and %d events, want %d and %d (with the challenges' and the revocations by renewal)", certs, events, serial, wantEvents)
	}
	rep, err := audit.Verify(ctx, s)
	if err != nil || !rep.OK() || rep.Checked != int64(wantEvents) {
		t.Errorf("audit verify: %+v (%v), want %d records and no problem", rep, err, wantEvents)
	}
}

// TestLostConnectionDatabaseDown: an issuance whose connection the server
// ended with its transaction sent, the database out of reach afterwards,
// is reported unavailable (503 at the protocol edges, so the client comes
// back), never as recorded, whether it was committed or not; what was
// committed stays. Only one whose COMMIT's answer came back before the end
// is reported recorded.
func TestLostConnectionDatabaseDown(t *testing.T) {
	ctx := context.Background()
	dbURL := pgtest.WithParam(t, migrated.Database(t), "pool_max_conns", testPoolSize)
	cut, through := newCutter(t, dbURL)
	s, err := Open(ctx, through)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	serial := 0
	for _, tc := range []struct {
		mode                string
		committed, answered bool
	}{
		{mode: fatalQuery},
		{mode: cutQuery},
		{mode: cutAnswer, committed: true},
		{mode: fatalAnswer, committed: true},
		{mode: fatalAfterAnswer, committed: true, answered: true},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			serial++
			in, _ := plainIssuance(now, fmt.Sprintf("2057%02x", serial), "default", 365)
			in.Certificate.DER = []byte{0x30, 2, byte(serial)}
			cut.downAfter.Store(true)
			cut.arm(tc.mode)
			err := s.RecordIssuance(ctx, *in)
			if cut.armed.Load() != "" {
				t.Fatal("the connection was not cut")
			}
			cut.up()
			switch {
			case tc.answered && err != nil:
				t.Errorf("RecordIssuance: %v, want recorded", err)
			case !tc.answered && !errors.Is(err, store.ErrUnavailable):
				t.Errorf("RecordIssuance: %v, want store.ErrUnavailable", err)
			}
			c := in.Certificate
			_, gerr := s.Certificate(ctx, c.IssuerID, c.SerialHex)
			if recorded := gerr == nil; recorded != tc.committed {
				t.Errorf("recorded: %v (%v), want %v", recorded, gerr, tc.committed)
			}
		})
	}
}

// TestLostConnectionEveryConnection: an issuance whose connection the
// server ended at its COMMIT, along with every other connection of the
// pool (pg_terminate_backend on all of the role's backends), is recorded
// once and reported recorded, the database being reachable: the pool hands
// out the ended idle connections (it checks only those idle for a second)
// to the run after the unknown outcome and to the look for the
// certificate, and neither gives up on the first of them.
func TestLostConnectionEveryConnection(t *testing.T) {
	ctx := context.Background()
	dbURL := pgtest.WithParam(t, migrated.Database(t), "pool_max_conns", testPoolSize)
	cut, through := newCutter(t, dbURL)
	s, err := Open(ctx, through)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fill := func() { fillPool(t, ctx, s) }
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	serial := 0
	for _, mode := range []string{fatalQuery, fatalAnswer, cutAnswer, fatalAfterAnswer} {
		for _, n := range []int{1, 3} {
			t.Run(fmt.Sprintf("%d issuances, %s", n, mode), func(t *testing.T) {
				var batch []*issueRequest
				for range n {
					serial++
					in, rows := plainIssuance(now, fmt.Sprintf("3057%02x", serial), "default", 365)
					in.Certificate.DER = []byte{0x30, 3, byte(serial)}
					batch = append(batch, &issueRequest{ctx: ctx, in: in, issued: rows, now: sqlstore.Micros(in.Now), done: make(chan error, 1)})
				}
				fill()
				cut.endAllAfter.Store(true)
				cut.arm(mode)
				s.runIssues(batch)
				if cut.armed.Load() != "" {
					t.Fatal("the connection was not cut")
				}
				cut.up()
				// The test's own reads on connections that were not
				// ended.
				s.pool.Reset()
				for i, r := range batch {
					if err := <-r.done; err != nil {
						t.Errorf("issuance %d: %v", i, err)
					}
					c := r.in.Certificate
					if _, err := s.Certificate(ctx, c.IssuerID, c.SerialHex); err != nil {
						t.Errorf("issuance %d not recorded: %v", i, err)
					}
				}
			})
		}
	}
	var certs int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM certificates`).Scan(&certs); err != nil {
		t.Fatal(err)
	}
	if certs != serial {
		t.Errorf("%d certificates, want %d", certs, serial)
	}
}
