package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// The statements every enrollment runs are prepared once, at Open, on the
// writer connection: compiling the certificate insert, with the triggers
// it fires, costs more than running it. A transaction's wtx runs them
// through those prepared statements; any other query is compiled as usual.
var hotQueries = []string{
	insertNonceQuery,
	reserveSerialQuery,
	claimTransactionQuery,
	keyCompromisedQuery,
	ownKeyQuery,
	endClaimQuery,
	insertCertificateQuery,
	recordSerialQuery,
	appendHeadQuery,
	insertAuditEventQuery,
	updateAuditHeadQuery,
	`SAVEPOINT write`,
	`RELEASE write`,
}

// prepareHot prepares hotQueries on the writer connection.
func (s *Store) prepareHot(ctx context.Context) error {
	s.hot = make(map[string]*sql.Stmt, len(hotQueries))
	for _, q := range hotQueries {
		st, err := s.w.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare %.40q: %w", q, err)
		}
		s.hot[q] = st
	}
	return nil
}

// wtx is a write transaction that runs the hot statements prepared.
type wtx struct {
	*sql.Tx
	hot map[string]*sql.Stmt // read-only once Open has returned
}

// prepared is q's statement in this transaction, or nil when q is not hot.
func (t *wtx) prepared(ctx context.Context, q string) *sql.Stmt {
	if st := t.hot[q]; st != nil {
		return t.Tx.StmtContext(ctx, st)
	}
	return nil
}

func (t *wtx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if st := t.prepared(ctx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, q, args...)
}

func (t *wtx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if st := t.prepared(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, q, args...)
}

func (t *wtx) PrepareContext(ctx context.Context, q string) (*sql.Stmt, error) {
	if st := t.prepared(ctx, q); st != nil {
		return st, nil
	}
	return t.Tx.PrepareContext(ctx, q)
}

// readRow runs q, a point lookup that requests make (an EST user, a
// challenge, an API token, a session, a certificate by serial, a held
// request), through a statement prepared once on the read pool, each
// connection preparing its own copy on first use. Compiling such a query
// cost about as much as running it: alone, the lookup of an EST user took
// 15.5 µs compiled and 10.3 prepared, of a certificate by serial 31.6 and
// 14.4; in a profile of EST enrollments at c=8, compiling was half of the
// user lookup. The statements are few, one per constant query string, so
// the map does not grow with use.
//
// Once ctx is checked, the lookup runs without its cancellation: it takes
// microseconds, and for a context that can end, database/sql and the
// driver each start a goroutine to watch it, which cost 4 of the 14.5 µs
// of an EST user lookup.
func (s *Store) readRow(ctx context.Context, q string, args ...any) *sql.Row {
	if ctx.Err() == nil {
		ctx = context.WithoutCancel(ctx)
	}
	st := s.readStmt(ctx, q)
	if st == nil {
		return s.r.QueryRowContext(ctx, q, args...) // which reports the error again
	}
	return st.QueryRowContext(ctx, args...)
}

// readRows is readRow for a short search that requests make, returning a
// few rows (a key's certificates of one transaction, on every SCEP
// enrollment at a static profile): compiling its long column list was
// two thirds of it.
func (s *Store) readRows(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if ctx.Err() == nil {
		ctx = context.WithoutCancel(ctx)
	}
	st := s.readStmt(ctx, q)
	if st == nil {
		return s.r.QueryContext(ctx, q, args...)
	}
	return st.QueryContext(ctx, args...)
}

// readStmt is q prepared on the read pool, once; nil if it does not
// compile.
func (s *Store) readStmt(ctx context.Context, q string) *sql.Stmt {
	if st, ok := s.reads.Load(q); ok {
		return st.(*sql.Stmt)
	}
	st, err := s.r.PrepareContext(ctx, q)
	if err != nil {
		return nil
	}
	if prev, loaded := s.reads.LoadOrStore(q, st); loaded {
		st.Close()
		st = prev.(*sql.Stmt)
	}
	return st
}
