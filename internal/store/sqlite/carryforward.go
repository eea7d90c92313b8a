package sqlite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store/migrate"
	"github.com/scepter/scepter/internal/store/sqlstore"
)

// What a restore carries forward. A backup holds the API tokens, one-time
// challenges, accounts and SCEP nonces of its day: put back as it is, it
// would make a revoked token work again, let a used challenge issue a
// second certificate and bring back removed accounts and old passwords.
// Those only move forward, so a restore over a database takes them from
// the database it replaces (the kept copy) into the restored one, before
// that one is put in place.

// EventRestoreCarriedForward records in the restored trail what a restore
// took from the database it replaced.
const EventRestoreCarriedForward = pki.EventRestoreCarriedForward

// ErrKeptUnreadable: CarryForward could not read the kept database (too
// damaged to open, or its log not folded into it), and changed nothing.
var ErrKeptUnreadable = errors.New("the replaced database could not be read")

// Carried counts what CarryForward changed in the restored database.
type Carried struct {
	TokensRevoked     int `json:"tokens_revoked"`     // live in the backup, revoked or gone since
	ChallengesUsedUp  int `json:"challenges_used_up"` // usable in the backup, used up or locked since
	ChallengesRemoved int `json:"challenges_removed"` // usable in the backup, removed since
	ESTUsersRemoved   int `json:"est_users_removed"`  // removed since the backup
	ESTPasswords      int `json:"est_passwords"`      // EST users whose password changed since
	ESTProfiles       int `json:"est_profiles"`       // EST users whose profile binding changed since
	UsersRemoved      int `json:"users_removed"`      // console users removed since
	UsersUpdated      int `json:"users_updated"`      // console users whose role, password or lockout changed since
	Nonces            int `json:"nonces"`             // SCEP nonces remembered since, still in their window
	SessionsDropped   int `json:"sessions_dropped"`   // console sessions of the backup's day
	// Made after the backup, in the replaced database and not in the
	// restored one: not carried (a restore is no way to grant access),
	// named so that they can be made again. API tokens by name, live ones
	// only.
	TokensLost   []string `json:"tokens_lost,omitempty"`
	ESTUsersLost []string `json:"est_users_lost,omitempty"`
	UsersLost    []string `json:"users_lost,omitempty"`
	// RootCRLs are the numbers of the root's CRLs (signed by hand, with
	// 'scepter ca root crl') that the replaced database holds above the
	// restored one's newest, carried: without them the restored store
	// serves an older root CRL, and the issuing CAs the root revoked
	// since count as valid until the next one is signed.
	RootCRLs []int64 `json:"root_crls,omitempty"`
	// RootCRLsRefused are such CRLs not carried, for they are not what
	// the root signed (a damaged database).
	RootCRLsRefused []RefusedCRL `json:"root_crls_refused,omitempty"`
}

// RefusedCRL is a root CRL of the replaced database that was not carried,
// and why.
type RefusedCRL struct {
	Number int64  `json:"number"`
	Why    string `json:"why"`
}

// Any says whether anything was carried forward or found lost.
func (c Carried) Any() bool {
	return c.TokensRevoked+c.ChallengesUsedUp+c.ChallengesRemoved+c.ESTUsersRemoved+c.ESTPasswords+c.ESTProfiles+
		c.UsersRemoved+c.UsersUpdated+c.Nonces+c.SessionsDropped > 0 ||
		len(c.TokensLost)+len(c.ESTUsersLost)+len(c.UsersLost)+len(c.RootCRLs)+len(c.RootCRLsRefused) > 0
}

// NewestRootCRL is the highest number of RootCRLs; 0 when none was
// carried.
func (c Carried) NewestRootCRL() int64 {
	if len(c.RootCRLs) == 0 {
		return 0
	}
	return slices.Max(c.RootCRLs)
}

// CarryForward takes into the database file at restored what may only move
// forward from the database file at kept (the one a restore replaces, its
// log folded into it): API tokens revoked or absent there are revoked,
// one-time challenges used up or locked there are so here too and those
// absent there are removed, EST users and console users absent there are
// removed and the others get its password hashes (EST users their
// profile binding too, console users their role and lockout), its SCEP
// nonces still within their window are added, every console session
// is dropped, and, when root is given (the CA's root certificate), the
// root's CRLs numbered above the restored database's newest are added,
// each only once its signature verifies with root (issuing CAs' CRLs are
// not: a node numbers its next one above its mark). It records what it did as one audit event, appended to the
// restored trail as every event is, and returns it. restored is opened as
// a store, never migrated: one at an older schema than this binary's is
// refused with a *migrate.TooOldError (ErrDatabaseTooOld) and left as it
// is, for a restore of a backup taken before an upgrade is how the
// upgrade is undone, and the older binary refuses a migrated file. It is
// closed with its log folded into the file. kept is only read; a log
// beside it (one that could not be folded) is an error, for the file
// alone would be read.
func CarryForward(ctx context.Context, restored, kept string, root *x509.Certificate, now time.Time, actor string) (Carried, error) {
	var c Carried
	// Read on the file alone, before Open, which sets up its log and
	// index beside it before it compares schemas.
	if err := refuseOlderSchema(ctx, restored); err != nil {
		return c, fmt.Errorf("sqlite: carry forward into %s: %w", restored, err)
	}
	k, err := readKept(ctx, kept, root, now)
	if err != nil {
		return c, fmt.Errorf("sqlite: carry forward from %s: %w: %w", kept, ErrKeptUnreadable, err)
	}
	s, err := Open(ctx, restored, migrate.WithoutMigrating())
	if err != nil {
		return c, fmt.Errorf("sqlite: carry forward: %w", err)
	}
	err = s.withTx(ctx, func(ctx context.Context, tx *wtx) error {
		c = Carried{}
		if err := k.apply(ctx, tx, now, &c); err != nil {
			return err
		}
		detail, err := json.Marshal(c)
		if err != nil {
			return err
		}
		return insertEvents(ctx, tx, now, []pki.AuditEvent{{Time: now, Type: EventRestoreCarriedForward,
			Actor: actor, Outcome: "success", Detail: string(detail)}})
	})
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Carried{}, fmt.Errorf("sqlite: carry forward into the restored database: %w", err)
	}
	// The file alone is renamed into place: its log must be in it.
	if err := FoldWAL(ctx, restored); err != nil {
		return Carried{}, err
	}
	for _, f := range []string{restored + "-wal", restored + "-shm"} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return Carried{}, fmt.Errorf("sqlite: carry forward: %w", err)
		}
	}
	return c, nil
}

// refuseOlderSchema returns a *migrate.TooOldError when the database file
// at path, read alone and unchanged, records fewer migrations than this
// binary has.
func refuseOlderSchema(ctx context.Context, path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: "mode=ro&immutable=1"}
	if !strings.HasPrefix(u.Path, "/") {
		u.Path = "/" + u.Path
	}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	have, err := schemaVersion(ctx, db)
	if err != nil {
		return err
	}
	want, err := migrate.Latest(Migrations())
	if err != nil {
		return err
	}
	if have < want {
		return &migrate.TooOldError{Have: have, Want: want}
	}
	return nil
}

// keptState is what CarryForward reads of the kept database. A nil map:
// the kept database has no such table (an older schema), and nothing of
// it is carried.
type keptState struct {
	tokens     map[string]*int64 // id → revoked_at
	tokenNames map[string]string // id → name, of the live ones
	challenges map[string]keptChallenge
	estUsers   map[string]keptESTUser
	users      map[string]keptUser
	nonces     []keptNonce
	// root and its CRLs, in number order; nil without a root.
	root     *x509.Certificate
	rootCRLs []keptCRL
}

// keptCRL is a row of the crls table, as it is.
type keptCRL struct {
	issuerID                                        string
	number, thisUpdate, nextUpdate, revSeq, entries int64
	der                                             []byte
	createdAt                                       int64
}

type keptChallenge struct {
	consumedAt, lockedAt *int64
	consumedBy           string
	failedUses           int64
}

// keptESTUser is an EST user's row: the profile binding goes with the
// password, or a restore would pair today's password with the backup's
// (perhaps wider) binding, a credential that never existed.
type keptESTUser struct {
	passwordHash, profile, createdBy string
	createdAt                        int64
}

type keptUser struct {
	role, passwordHash            string
	failedLogins                  int64
	lockedUntil, failuresExpireAt *int64
}

type keptNonce struct {
	transactionID string
	senderNonce   []byte
	expiresAt     int64
}

// readKept reads the kept database's file alone, unchanged; the CRLs of
// root, when it is given.
func readKept(ctx context.Context, path string, root *x509.Certificate, now time.Time) (*keptState, error) {
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > 0 {
		return nil, fmt.Errorf("its write-ahead log %s could not be folded into it", path+"-wal")
	}
	if err := checkHeader(path); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: "mode=ro&immutable=1"}
	if !strings.HasPrefix(u.Path, "/") {
		u.Path = "/" + u.Path
	}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := schemaVersion(ctx, db); err != nil {
		return nil, err
	}
	k := &keptState{}
	if ok, err := hasTable(ctx, db, "api_tokens"); err != nil {
		return nil, err
	} else if ok {
		k.tokens, k.tokenNames = map[string]*int64{}, map[string]string{}
		err := eachRow(ctx, db, `SELECT id, name, revoked_at, expires_at FROM api_tokens`, func(rows *sql.Rows) error {
			var id, name string
			var revoked, expires *int64
			if err := rows.Scan(&id, &name, &revoked, &expires); err != nil {
				return err
			}
			k.tokens[id] = revoked
			if revoked == nil && (expires == nil || *expires > sqlstore.Micros(now)) {
				k.tokenNames[id] = name
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("api tokens: %w", err)
		}
	}
	// challenges is in every schema; locked_at and consumed_by came later.
	lockable, err := hasColumn(ctx, db, "challenges", "locked_at")
	if err != nil {
		return nil, err
	}
	naming, err := hasColumn(ctx, db, "challenges", "consumed_by")
	if err != nil {
		return nil, err
	}
	q := `SELECT id, consumed_at, NULL, '', 0 FROM challenges`
	switch {
	case lockable && naming:
		q = `SELECT id, consumed_at, locked_at, consumed_by, failed_uses FROM challenges`
	case lockable:
		q = `SELECT id, consumed_at, locked_at, '', failed_uses FROM challenges`
	}
	k.challenges = map[string]keptChallenge{}
	err = eachRow(ctx, db, q, func(rows *sql.Rows) error {
		var id string
		var ch keptChallenge
		if err := rows.Scan(&id, &ch.consumedAt, &ch.lockedAt, &ch.consumedBy, &ch.failedUses); err != nil {
			return err
		}
		k.challenges[id] = ch
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("challenges: %w", err)
	}
	if ok, err := hasTable(ctx, db, "est_users"); err != nil {
		return nil, err
	} else if ok {
		k.estUsers = map[string]keptESTUser{}
		err := eachRow(ctx, db, `SELECT name, password_hash, profile, created_at, created_by FROM est_users`, func(rows *sql.Rows) error {
			var name string
			var u keptESTUser
			if err := rows.Scan(&name, &u.passwordHash, &u.profile, &u.createdAt, &u.createdBy); err != nil {
				return err
			}
			k.estUsers[name] = u
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("EST users: %w", err)
		}
	}
	if ok, err := hasTable(ctx, db, "users"); err != nil {
		return nil, err
	} else if ok {
		expiring, err := hasColumn(ctx, db, "users", "failures_expire_at")
		if err != nil {
			return nil, err
		}
		q := `SELECT name, role, password_hash, failed_logins, locked_until, NULL FROM users`
		if expiring {
			q = `SELECT name, role, password_hash, failed_logins, locked_until, failures_expire_at FROM users`
		}
		k.users = map[string]keptUser{}
		err = eachRow(ctx, db, q, func(rows *sql.Rows) error {
			var name string
			var u keptUser
			if err := rows.Scan(&name, &u.role, &u.passwordHash, &u.failedLogins, &u.lockedUntil, &u.failuresExpireAt); err != nil {
				return err
			}
			k.users[name] = u
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("users: %w", err)
		}
	}
	err = eachRow(ctx, db, `SELECT transaction_id, sender_nonce, expires_at FROM nonces WHERE expires_at > ?`, func(rows *sql.Rows) error {
		var n keptNonce
		if err := rows.Scan(&n.transactionID, &n.senderNonce, &n.expiresAt); err != nil {
			return err
		}
		k.nonces = append(k.nonces, n)
		return nil
	}, sqlstore.Micros(now))
	if err != nil {
		return nil, fmt.Errorf("nonces: %w", err)
	}
	if root == nil {
		return k, nil
	}
	k.root = root
	if ok, err := hasTable(ctx, db, "crls"); err != nil || !ok {
		return k, err
	}
	err = eachRow(ctx, db, `SELECT issuer_id, number, this_update, next_update, revocation_seq, entries, der, created_at
		FROM crls WHERE issuer_id = ? ORDER BY number`, func(rows *sql.Rows) error {
		var c keptCRL
		if err := rows.Scan(&c.issuerID, &c.number, &c.thisUpdate, &c.nextUpdate, &c.revSeq, &c.entries, &c.der, &c.createdAt); err != nil {
			return err
		}
		k.rootCRLs = append(k.rootCRLs, c)
		return nil
	}, rootIssuerID(root))
	if err != nil {
		return nil, fmt.Errorf("root CRLs: %w", err)
	}
	return k, nil
}

// rootIssuerID is the root's issuer ID, under which its CRLs are stored:
// the hex SHA-256 of its certificate.
func rootIssuerID(root *x509.Certificate) string {
	sum := sha256.Sum256(root.Raw)
	return hex.EncodeToString(sum[:])
}

// checkRootCRL says why c is not a CRL that root signed under the number
// it is stored with; nil when it is.
func checkRootCRL(c keptCRL, root *x509.Certificate) error {
	rl, err := x509.ParseRevocationList(c.der)
	if err != nil {
		return fmt.Errorf("it cannot be read as a CRL: %w", err)
	}
	if !bytes.Equal(rl.RawIssuer, root.RawSubject) {
		return fmt.Errorf("it names %s as its issuer, not the root %s", rl.Issuer, root.Subject)
	}
	if err := rl.CheckSignatureFrom(root); err != nil {
		return fmt.Errorf("its signature does not verify with the root certificate: %w", err)
	}
	if rl.Number == nil || !rl.Number.IsInt64() || rl.Number.Int64() != c.number {
		return fmt.Errorf("it is stored as number %d, but is CRL number %v", c.number, rl.Number)
	}
	return nil
}

// apply makes the changes in the restored database, inside tx, and counts
// them in c.
func (k *keptState) apply(ctx context.Context, tx *wtx, now time.Time, c *Carried) error {
	at := sqlstore.Micros(now)
	if k.tokens != nil {
		live, err := queryAll(ctx, tx, scanText, `SELECT id FROM api_tokens WHERE revoked_at IS NULL`)
		if err != nil {
			return fmt.Errorf("api tokens: %w", err)
		}
		for _, id := range live {
			revoked, ok := k.tokens[id]
			if ok && revoked == nil {
				continue
			}
			when := at
			if revoked != nil {
				when = *revoked
			}
			if _, err := tx.ExecContext(ctx, `UPDATE api_tokens SET revoked_at = ? WHERE id = ?`, when, id); err != nil {
				return fmt.Errorf("revoke api token %s: %w", id, err)
			}
			c.TokensRevoked++
		}
	}
	usable, err := queryAll(ctx, tx, scanText, `SELECT id FROM challenges WHERE consumed_at IS NULL AND locked_at IS NULL`)
	if err != nil {
		return fmt.Errorf("challenges: %w", err)
	}
	for _, id := range usable {
		ch, ok := k.challenges[id]
		switch {
		case !ok:
			if _, err := tx.ExecContext(ctx, `DELETE FROM challenges WHERE id = ?`, id); err != nil {
				return fmt.Errorf("remove challenge %s: %w", id, err)
			}
			c.ChallengesRemoved++
		case ch.consumedAt != nil || ch.lockedAt != nil:
			if _, err := tx.ExecContext(ctx, `UPDATE challenges SET consumed_at = ?, consumed_by = ?, locked_at = ?, failed_uses = max(failed_uses, ?) WHERE id = ?`,
				ch.consumedAt, ch.consumedBy, ch.lockedAt, ch.failedUses, id); err != nil {
				return fmt.Errorf("use up challenge %s: %w", id, err)
			}
			c.ChallengesUsedUp++
		case ch.failedUses > 0:
			// Misuses count toward the lock: not fewer than were seen.
			if _, err := tx.ExecContext(ctx, `UPDATE challenges SET failed_uses = max(failed_uses, ?) WHERE id = ?`, ch.failedUses, id); err != nil {
				return fmt.Errorf("challenge %s: %w", id, err)
			}
		}
	}
	if k.estUsers != nil {
		err := eachRowTx(ctx, tx, `SELECT name, password_hash FROM est_users`, func(name, hash string) error {
			u, ok := k.estUsers[name]
			if !ok {
				if _, err := tx.ExecContext(ctx, `DELETE FROM est_users WHERE name = ?`, name); err != nil {
					return err
				}
				c.ESTUsersRemoved++
				return nil
			}
			var profile string
			if err := tx.QueryRowContext(ctx, `SELECT profile FROM est_users WHERE name = ?`, name).Scan(&profile); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE est_users SET password_hash = ?1, profile = ?2, created_at = ?3, created_by = ?4
				WHERE name = ?5 AND (password_hash IS NOT ?1 OR profile IS NOT ?2 OR created_at IS NOT ?3 OR created_by IS NOT ?4)`,
				u.passwordHash, u.profile, u.createdAt, u.createdBy, name); err != nil {
				return err
			}
			if u.passwordHash != hash {
				c.ESTPasswords++
			}
			if u.profile != profile {
				c.ESTProfiles++
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("EST users: %w", err)
		}
	}
	if k.users != nil {
		err := eachRowTx(ctx, tx, `SELECT name, '' FROM users`, func(name, _ string) error {
			u, ok := k.users[name]
			if !ok {
				if _, err := tx.ExecContext(ctx, `DELETE FROM users WHERE name = ?`, name); err != nil {
					return err
				}
				c.UsersRemoved++
				return nil
			}
			res, err := tx.ExecContext(ctx, `UPDATE users SET role = ?1, password_hash = ?2, failed_logins = ?3, locked_until = ?4, failures_expire_at = ?5
				WHERE name = ?6 AND (role IS NOT ?1 OR password_hash IS NOT ?2 OR failed_logins IS NOT ?3 OR locked_until IS NOT ?4 OR failures_expire_at IS NOT ?5)`,
				u.role, u.passwordHash, u.failedLogins, u.lockedUntil, u.failuresExpireAt, name)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n > 0 {
				c.UsersUpdated++
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("users: %w", err)
		}
	}
	for _, n := range k.nonces {
		res, err := tx.ExecContext(ctx, `INSERT INTO nonces (transaction_id, sender_nonce, expires_at) VALUES (?, ?, ?)
			ON CONFLICT (transaction_id, sender_nonce) DO UPDATE SET expires_at = excluded.expires_at
			WHERE excluded.expires_at > nonces.expires_at`,
			n.transactionID, n.senderNonce, n.expiresAt)
		if err != nil {
			return fmt.Errorf("nonces: %w", err)
		}
		if m, _ := res.RowsAffected(); m > 0 {
			c.Nonces++
		}
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM sessions`)
	if err != nil {
		return fmt.Errorf("sessions: %w", err)
	}
	n, _ := res.RowsAffected()
	c.SessionsDropped = int(n)
	if err := k.carryRootCRLs(ctx, tx, c); err != nil {
		return err
	}
	return k.findLost(ctx, tx, c)
}

// carryRootCRLs adds the kept root CRLs numbered above the restored
// database's newest, those whose signature verifies with the root; the
// others are named in c.RootCRLsRefused. The next 'scepter ca root crl'
// builds on the newest, carrying its entries on, and prunes the older.
func (k *keptState) carryRootCRLs(ctx context.Context, tx *wtx, c *Carried) error {
	if k.root == nil || len(k.rootCRLs) == 0 {
		return nil
	}
	var newest int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(number), 0) FROM crls WHERE issuer_id = ?`,
		rootIssuerID(k.root)).Scan(&newest); err != nil {
		return fmt.Errorf("root CRLs: %w", err)
	}
	for _, r := range k.rootCRLs {
		if r.number <= newest {
			continue
		}
		if err := checkRootCRL(r, k.root); err != nil {
			c.RootCRLsRefused = append(c.RootCRLsRefused, RefusedCRL{Number: r.number, Why: err.Error()})
			continue
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO crls (issuer_id, number, this_update, next_update,
			revocation_seq, entries, der, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			r.issuerID, r.number, r.thisUpdate, r.nextUpdate, r.revSeq, r.entries, r.der, r.createdAt); err != nil {
			return fmt.Errorf("root CRL %d: %w", r.number, err)
		}
		c.RootCRLs = append(c.RootCRLs, r.number)
	}
	return nil
}

// findLost names in c what the kept database holds and the restored one
// lacks: API tokens (live ones), EST users and console users made after
// the backup.
func (k *keptState) findLost(ctx context.Context, tx *wtx, c *Carried) error {
	lost := func(table, column string, kept []string) ([]string, error) {
		have, err := queryAll(ctx, tx, scanText, `SELECT `+column+` FROM `+table)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", table, err)
		}
		var out []string
		for _, v := range kept {
			if !slices.Contains(have, v) {
				out = append(out, v)
			}
		}
		slices.Sort(out)
		return out, nil
	}
	var err error
	if k.tokenNames != nil {
		ids, err := lost("api_tokens", "id", slices.Collect(maps.Keys(k.tokenNames)))
		if err != nil {
			return err
		}
		for _, id := range ids {
			c.TokensLost = append(c.TokensLost, k.tokenNames[id])
		}
		slices.Sort(c.TokensLost)
	}
	if k.estUsers != nil {
		if c.ESTUsersLost, err = lost("est_users", "name", slices.Collect(maps.Keys(k.estUsers))); err != nil {
			return err
		}
	}
	if k.users != nil {
		if c.UsersLost, err = lost("users", "name", slices.Collect(maps.Keys(k.users))); err != nil {
			return err
		}
	}
	return nil
}

// Resurrectable counts what a backup put in place with nothing to carry
// forward (a new machine) may bring back: the tokens it holds unrevoked,
// the challenges it holds usable, its EST users and console users.
type Resurrectable struct {
	Tokens, Challenges, ESTUsers, Users int64
}

// CountResurrectable reads a Resurrectable of the database file at path,
// usable at now; it reads the file alone, unchanged.
func CountResurrectable(ctx context.Context, path string, now time.Time) (Resurrectable, error) {
	var r Resurrectable
	abs, err := filepath.Abs(path)
	if err != nil {
		return r, err
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: "mode=ro&immutable=1"}
	if !strings.HasPrefix(u.Path, "/") {
		u.Path = "/" + u.Path
	}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return r, fmt.Errorf("sqlite: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	at := sqlstore.Micros(now)
	for _, q := range []struct {
		table, query string
		n            *int64
		args         []any
	}{
		{"api_tokens", `SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)`, &r.Tokens, []any{at}},
		{"challenges", `SELECT count(*) FROM challenges WHERE consumed_at IS NULL AND expires_at > ?`, &r.Challenges, []any{at}},
		{"est_users", `SELECT count(*) FROM est_users`, &r.ESTUsers, nil},
		{"users", `SELECT count(*) FROM users`, &r.Users, nil},
	} {
		if ok, err := hasTable(ctx, db, q.table); err != nil {
			return r, fmt.Errorf("sqlite: %w", err)
		} else if !ok {
			continue
		}
		if err := db.QueryRowContext(ctx, q.query, q.args...).Scan(q.n); err != nil {
			return r, fmt.Errorf("sqlite: %s: %w", q.table, err)
		}
	}
	return r, nil
}

// hasColumn says whether table has the named column.
func hasColumn(ctx context.Context, db *sql.DB, table, column string) (bool, error) {
	var n int
	err := db.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info(?) WHERE name = ?`, table, column).Scan(&n)
	return n > 0, err
}

func eachRow(ctx context.Context, db *sql.DB, q string, fn func(*sql.Rows) error, args ...any) error {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// eachRowTx calls fn for each row of two text columns, read in full
// before the first call, so that fn may change the table.
func eachRowTx(ctx context.Context, tx *wtx, q string, fn func(a, b string) error) error {
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	var pairs [][2]string
	for rows.Next() {
		var p [2]string
		if err := rows.Scan(&p[0], &p[1]); err != nil {
			rows.Close()
			return err
		}
		pairs = append(pairs, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, p := range pairs {
		if err := fn(p[0], p[1]); err != nil {
			return err
		}
	}
	return nil
}

// Summary is what a restore compares between the database it replaces
// and the one it puts in place.
type Summary struct {
	Certificates, Revoked int64
	// NewestIssued is the newest certificate's recording time; zero when
	// there is none.
	NewestIssued time.Time
}

// Summarize reads the Summary of the database file at path, the file
// alone, unchanged.
func Summarize(ctx context.Context, path string) (Summary, error) {
	var s Summary
	abs, err := filepath.Abs(path)
	if err != nil {
		return s, err
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: "mode=ro&immutable=1"}
	if !strings.HasPrefix(u.Path, "/") {
		u.Path = "/" + u.Path
	}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return s, fmt.Errorf("sqlite: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var newest *int64
	if err := db.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE status = 'revoked'), max(created_at) FROM certificates`).
		Scan(&s.Certificates, &s.Revoked, &newest); err != nil {
		return s, fmt.Errorf("sqlite: summarize %s: %w", path, err)
	}
	if newest != nil {
		s.NewestIssued = sqlstore.FromMicros(*newest)
	}
	return s, nil
}
