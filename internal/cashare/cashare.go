// Package cashare keeps one node's CA in step with the CA recorded in the
// store, so that any number of `scepter serve` processes on one database
// are one CA, not copies of one.
//
// The store holds the CA's generations (issuing CA certificates, the root
// they chain to, and when each becomes current); keys never go there. Each
// node holds the keys in its data directory (placed with `scepter ca
// export-keys` and `import-keys`) or reaches them in a shared HSM. A node:
//
//   - at its first start on an empty store, records its CA (the first node
//     creates it, as on a single machine);
//   - on a store that holds a CA, never creates one: it starts only with
//     that CA's keys (Before refuses a data directory without a CA);
//   - records a next generation made on it by `scepter ca rollover`, unless
//     the store schedules another one, or its keys do not sign here; one
//     whose switch time passed before any node recorded it (no server ran)
//     is recorded late, with its switch time, when the store has scheduled
//     nothing since;
//   - never records, serves or switches to a generation discarded before
//     its switch (`scepter ca rollover --discard` on any node: the store
//     keeps the discard), even while its files stay in DATA/ca/next;
//   - switches at the switch time the store holds, like every other node,
//     and the first node to see that time come records the switch once
//     (store.PromoteCAGeneration decides which);
//   - is not ready (/readyz) while it cannot issue with the store's
//     current generation: other root, missing keys, another schedule.
package cashare

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// ErrNotThisCA: the node's CA is not the store's.
var ErrNotThisCA = errors.New("this node's CA is not the CA recorded in the store")

// Before is called before the node loads or creates its CA. On a store
// that records a CA, a data directory without one is refused: creating a
// CA there would make a second CA, not a second node of the first.
//
// recorded says whether the store held a CA already: this node then serves
// a CA that another node (or an earlier start of this one) recorded.
func Before(ctx context.Context, st store.Store, dataDir string) (recorded bool, err error) {
	gens, err := st.CAGenerations(ctx)
	if err != nil {
		return false, fmt.Errorf("reading the CA recorded in the store: %w", err)
	}
	if len(gens) == 0 {
		return false, nil
	}
	caDir := filepath.Join(dataDir, "ca")
	if _, err := os.Stat(filepath.Join(caDir, ca.RootCertFile)); err == nil {
		return true, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return true, fmt.Errorf("ca: %w", err)
	}
	g := gens[len(gens)-1]
	return true, fmt.Errorf("%w: the store holds a CA (root %s, issuing CA %s, recorded by %s), and %s holds none. "+
		"A node joins it with the CA's keys: run 'scepter ca export-keys --out FILE' on a node that has them and "+
		"'scepter ca import-keys --data-dir %s --in FILE' here (with the keys in an HSM: copy that node's DATA/ca, which holds only certificates and references, and give this node the same token), then start again",
		ErrNotThisCA, g.RootFingerprint, g.IssuerID, g.PublishedBy, caDir, dataDir)
}

// ErrRolloverUnderWay: the store schedules a next issuing CA that this
// node does not hold.
var ErrRolloverUnderWay = errors.New("a rollover is under way")

// CheckRollover is called before `scepter ca rollover` makes a next issuing
// CA in dataDir. While the store schedules a next generation other than
// the one this node holds already (localNextID, "" for none), another node
// rolled over: a second next CA here would be served by this node's
// GetNextCACert beside the store's, and the node would stop being ready
// once it loaded it. One rollover at a time, for every node.
func CheckRollover(ctx context.Context, st store.Store, now time.Time, localNextID string) error {
	gens, err := st.CAGenerations(ctx)
	if err != nil {
		return fmt.Errorf("reading the CA recorded in the store: %w", err)
	}
	p := pending(gens, now)
	if p == nil || p.IssuerID == localNextID {
		return nil
	}
	return fmt.Errorf("%w: the store schedules issuing CA %s from %s (recorded by %s), which this node lacks; "+
		"bring its keys here ('scepter ca export-keys' on that node, 'scepter ca import-keys' here; with the keys in an HSM, copy its DATA/ca) instead of making another, "+
		"or discard it first with 'scepter ca rollover --discard' (then on every node that holds it)",
		ErrRolloverUnderWay, p.IssuerID, p.SwitchAt.UTC().Format(time.RFC3339), p.PublishedBy)
}

// ErrNothingToDiscard: neither the data directory nor the store holds a
// next issuing CA still to come.
var ErrNothingToDiscard = errors.New("no next issuing CA to discard")

// Discarded says what Discard removed.
type Discarded struct {
	IssuerID  string
	SwitchAt  time.Time
	FromStore bool // the store had recorded it
	FromDisk  bool // DATA/ca/next held it
	// Kept: this discard is the one the store keeps (whether or not it
	// had recorded the CA), with its audit event.
	Kept bool
	// Before: the store had discarded it already (on another node), so
	// only DATA/ca/next held it.
	Before bool
	// Cert is its certificate (DER), which clients may have fetched with
	// GetNextCACert: the one thing left to list it on the root's CRL
	// with (ca root crl --revoke-cert). Nil if it could not be read.
	Cert []byte
}

// Discard undoes a rollover before its switch (`scepter ca rollover
// --discard`): the next issuing CA in dataDir/ca/next, or else the one
// the store schedules, is removed from the store when recorded there
// (store.DiscardCAGeneration: never once its switch time has come or it
// was promoted), then from dataDir, with an audit event by actor. The
// store keeps the discard: another node that holds it in its DATA/ca/next
// stops serving it at its next Sync, never records or switches to it, and
// warns until it is discarded there too, which its switch time having
// passed does not prevent (a copy that the store does not record as
// discarded is refused then, with ca.ErrSwitched).
func Discard(ctx context.Context, st store.Store, dataDir string, now time.Time, actor string) (Discarded, error) {
	var d Discarded
	localID, localAt, local, err := ca.NextOnDisk(dataDir)
	if err != nil {
		return d, err
	}
	// A copy of a next CA that the store records as discarded never
	// became current, on any node: its switch time having passed does not
	// keep it here.
	discardedBefore := false
	if local && !now.Before(localAt) {
		ds, err := st.DiscardedCAGenerations(ctx)
		if err != nil {
			return d, fmt.Errorf("reading the discarded CAs recorded in the store: %w", err)
		}
		discardedBefore = slices.ContainsFunc(ds, func(x store.DiscardedCAGeneration) bool { return x.IssuerID == localID })
		if !discardedBefore {
			return d, fmt.Errorf("%w: issuing CA %s is current since %s; it can no longer be discarded", ca.ErrSwitched, localID, localAt.Format(time.RFC3339))
		}
	}
	gens, err := st.CAGenerations(ctx)
	if err != nil {
		return d, fmt.Errorf("reading the CA recorded in the store: %w", err)
	}
	var rec *store.CAGeneration
	if local {
		d.IssuerID, d.SwitchAt = localID, localAt
		if i := slices.IndexFunc(gens, func(g store.CAGeneration) bool { return g.IssuerID == localID }); i >= 0 {
			rec = &gens[i]
		}
	} else if rec = pending(gens, now); rec == nil {
		return d, ErrNothingToDiscard
	} else {
		d.IssuerID, d.SwitchAt = rec.IssuerID, rec.SwitchAt.UTC()
	}
	if rec != nil {
		d.Cert = rec.IssuerDER
	} else if pemData, err := os.ReadFile(filepath.Join(dataDir, "ca", ca.NextDir, ca.IssuingCertFile)); err == nil {
		if certs, err := keys.ParseCertsPEM(pemData); err == nil && len(certs) == 1 {
			d.Cert = certs[0].Raw
		}
	}
	ev := pki.AuditEvent{Time: now, Type: pki.EventCARollover, Actor: actor, IssuerID: d.IssuerID, Outcome: "success",
		Detail: fmt.Sprintf("next issuing CA %s discarded before its switch at %s", d.IssuerID, d.SwitchAt.Format(time.RFC3339))}
	if rec != nil || !discardedBefore {
		// One the store never recorded has its discard recorded all the
		// same, so that no node holding a copy records it later.
		if rec == nil {
			ev.Detail += " (the store had not recorded it)"
		}
		err := st.DiscardCAGeneration(ctx, d.IssuerID, now, ev)
		switch {
		case errors.Is(err, store.ErrConflict):
			return d, fmt.Errorf("%w: the store switched to issuing CA %s; it can no longer be discarded", ca.ErrSwitched, d.IssuerID)
		case errors.Is(err, store.ErrNotFound): // discarded meanwhile, from another node
		case err != nil:
			return d, fmt.Errorf("discarding issuing CA %s from the store: %w", d.IssuerID, err)
		default:
			d.FromStore = rec != nil
			d.Kept = true
		}
	}
	if !local {
		return d, nil
	}
	discardNext := func() error { return ca.DiscardNext(dataDir, localID, now) }
	if discardedBefore {
		discardNext = func() error { return ca.DiscardDiscardedNext(dataDir, localID) }
	}
	if err := discardNext(); err != nil {
		return d, err
	}
	d.FromDisk = true
	if !d.Kept {
		// Discarded from the store before, on another node: its event is
		// there; this one is this node's copy going.
		d.Before = true
		ev.Detail += " (discarded from the store before, on another node)"
		if err := st.AppendAudit(ctx, ev); err != nil {
			return d, fmt.Errorf("the next CA was discarded, but its audit event could not be written: %w", err)
		}
	}
	return d, nil
}

// setupLocker is a store that several nodes share and that can make them
// take turns creating the CA (postgres.Store.LockCASetup). A SQLite store
// is one data directory, whose CA a second process loads rather than
// creates again (ca.LoadOrCreate).
type setupLocker interface {
	LockCASetup(ctx context.Context) (unlock func(), err error)
}

// LockCAChanges takes the store's CA setup lock (PostgreSQL; on SQLite,
// one data directory, it does nothing), under which a command that changes
// the CA every node shares (`ca rollover`, `ca renew-ra`) looks in the
// store for another node's change this node lacks, makes its own and
// records it: so that of two such commands on two nodes the second waits,
// then finds the first's recorded and is refused. It waits for the node
// holding the lock (or until ctx ends). unlock may be called more than
// once.
func LockCAChanges(ctx context.Context, st store.Store) (unlock func(), err error) {
	l, ok := st.(setupLocker)
	if !ok {
		return func() {}, nil
	}
	if unlock, err = l.LockCASetup(ctx); err != nil {
		return nil, fmt.Errorf("waiting for other nodes' CA changes: %w", err)
	}
	return unlock, nil
}

// Begin is Before for a node that will then load or create its CA and
// record it: when the store records no CA yet, it takes the store's CA
// setup lock and looks again, so that of nodes starting together on an
// empty store one creates and records the CA and the others, once it has,
// join it or are refused (as Before says). The caller calls unlock once
// the CA is recorded (Syncer.Sync), and on every way out before; unlock
// may be called more than once.
func Begin(ctx context.Context, st store.Store, dataDir string) (recorded bool, unlock func(), err error) {
	unlock = func() {}
	if recorded, err = Before(ctx, st, dataDir); err != nil || recorded {
		return recorded, unlock, err
	}
	l, ok := st.(setupLocker)
	if !ok {
		return false, unlock, nil
	}
	if unlock, err = l.LockCASetup(ctx); err != nil {
		return false, func() {}, fmt.Errorf("waiting for other nodes setting up the CA: %w", err)
	}
	// Another node may have recorded its CA while this one waited.
	if recorded, err = Before(ctx, st, dataDir); err != nil {
		unlock()
		return recorded, func() {}, err
	}
	return recorded, unlock, nil
}

// Syncer compares the node's CA with the store's, records what the store
// lacks and the switch, and says whether the node may issue.
type Syncer struct {
	Store     store.Store
	Authority *ca.Authority
	Clock     pki.Clock
	// Node names this node in the store and the audit trail
	// ("host 127.0.0.1:8080").
	Node string
	Log  *slog.Logger

	mu       sync.Mutex
	problem  error  // why the node may not issue; nil when it may
	reported string // the last warning logged, to log each once
	// unusable is the last warning logged of a next CA whose key does
	// not sign here, to log it once.
	unusable string
	switchAt time.Time // the store's next switch, zero when none
	// lacking is the store's next generation when this node lacks it
	// (its keys not imported yet), as GetNextCACert serves it; nil
	// otherwise.
	lacking *pki.RA
	// lackingUntil is lacking's switch time.
	lackingUntil time.Time
	// issuing is the issuing CA this node last issued with in step with
	// the store ("" before the first Sync that found it so), to log
	// once that it issues with another CA.
	issuing string
}

// LackedNextRA is the next CA the store schedules when this node lacks it
// (its keys not imported here yet): its RA certificate (the issuing CA's
// own in RA mode ca) and chain, with no key, for GetNextCACert, so that
// behind a load balancer every node tells clients of the rollover alike.
// False when this node has the next CA itself, or none is scheduled.
func (s *Syncer) LackedNextRA(now time.Time) (*pki.RA, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lacking == nil || !now.Before(s.lackingUntil) {
		return nil, false
	}
	return s.lacking, true
}

// LackedNextCA is the issuing CA certificate of LackedNextRA's answer, for
// EST /cacerts: a node lacking the next CA still hands it out, like the
// nodes that hold it.
func (s *Syncer) LackedNextCA(now time.Time) (*x509.Certificate, bool) {
	ra, ok := s.LackedNextRA(now)
	if !ok {
		return nil, false
	}
	// lackedRA's chain ends with the issuing CA and the root.
	return ra.Chain[len(ra.Chain)-2], true
}

// lackedRA builds LackedNextRA's answer from the store's generation g.
func (s *Syncer) lackedRA(g *store.CAGeneration) (*pki.RA, error) {
	iss, err := x509.ParseCertificate(g.IssuerDER)
	if err != nil {
		return nil, fmt.Errorf("the store's next issuing CA %s: %w", g.IssuerID, err)
	}
	ra := &pki.RA{Cert: iss, Chain: []*x509.Certificate{iss, s.Authority.Root}, IsCA: len(g.RADER) == 0}
	if !ra.IsCA {
		if ra.Cert, err = x509.ParseCertificate(g.RADER); err != nil {
			return nil, fmt.Errorf("the store's next RA certificate (issuing CA %s): %w", g.IssuerID, err)
		}
		ra.Chain = append([]*x509.Certificate{ra.Cert}, ra.Chain...)
	}
	return ra, nil
}

// NextCheck is how long to wait before the next Sync: interval, or less
// when the store schedules a switch before then (just after it).
func (s *Syncer) NextCheck(now time.Time, interval time.Duration) time.Duration {
	s.mu.Lock()
	at := s.switchAt
	s.mu.Unlock()
	if d := at.Sub(now) + 100*time.Millisecond; !at.IsZero() && d > 0 && d < interval {
		return d
	}
	return interval
}

// Ready is the readiness check: nil while the node can issue with the
// store's current generation.
func (s *Syncer) Ready(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.problem
}

// Sync compares once. It returns the error that makes the node unable to
// serve as this CA (also kept for Ready), or a store error; warnings that
// do not stop issuing now (a next generation this node lacks the keys of)
// are logged once.
func (s *Syncer) Sync(ctx context.Context) error {
	now := s.Clock.Now()
	gens, err := s.Store.CAGenerations(ctx)
	if err != nil {
		return fmt.Errorf("reading the CA recorded in the store: %w", err)
	}
	root := s.Authority.RootFingerprint()
	for _, g := range gens {
		if g.RootFingerprint != root {
			return s.fail(fmt.Errorf("%w: the store's CA has root %s, this node's %s", ErrNotThisCA, g.RootFingerprint, root))
		}
	}
	discarded, err := s.dropDiscarded(ctx, now)
	if err != nil {
		return err
	}
	if active, _ := s.Authority.Active(now); discarded[active.ID] != nil {
		// Switched before this node learnt of the discard (it started
		// after the switch time): the keys may be gone.
		d := discarded[active.ID]
		return s.fail(fmt.Errorf("this node switched to issuing CA %s, which was discarded at %s by %s: it must not issue with it; bring the store's CA here (%s)",
			active.ID, d.DiscardedAt.UTC().Format(time.RFC3339), d.DiscardedBy, s.howToGetCA()))
	}
	if len(gens) == 0 {
		// The first node on this store records its CA as it is now.
		iss, ra := s.Authority.Active(now)
		if err := s.publish(ctx, iss, ra, time.Time{}); err != nil {
			return s.fail(err)
		}
		if gens, err = s.Store.CAGenerations(ctx); err != nil {
			return fmt.Errorf("reading the CA recorded in the store: %w", err)
		}
	}
	// The generation this node issues with, whose switch time passed
	// before any node recorded it: the rollover's switch came while no
	// server watched (stopped, or before its next reload). It is recorded
	// as it would have been before its switch.
	if active, ra := s.Authority.Active(now); !recorded(gens, active.ID) {
		if since, ok := s.Authority.ActiveSince(now); ok {
			if err := s.publishLate(ctx, gens, active, ra, since); err != nil {
				return s.fail(err)
			}
			if gens, err = s.Store.CAGenerations(ctx); err != nil {
				return fmt.Errorf("reading the CA recorded in the store: %w", err)
			}
		}
	}
	// A next generation made here, which the store lacks.
	if next, ra, ok := s.Authority.Next(now); ok && !recorded(gens, next.ID) {
		at, _ := s.Authority.SwitchAt()
		if other := pending(gens, now); other != nil {
			return s.fail(fmt.Errorf("this node has a next issuing CA %s (switch at %s), but the store schedules %s at %s: "+
				"discard this node's with 'scepter ca rollover --discard' (it removes %s; the store's stays)",
				next.ID, at.Format(time.RFC3339), other.IssuerID, other.SwitchAt.Format(time.RFC3339), filepath.Join("DATA", "ca", "next")))
		}
		switch err := s.publish(ctx, next, ra, at); {
		case errors.Is(err, errKeyUnusable):
			// The current CA still issues: warned, not recorded, so
			// that no node switches to it.
			s.warnUnusable(fmt.Sprintf("this node's next issuing CA %s (switch at %s) is not recorded in the store: %v", next.ID, at.UTC().Format(time.RFC3339), err))
		case err != nil:
			return s.fail(err)
		}
		if gens, err = s.Store.CAGenerations(ctx); err != nil {
			return fmt.Errorf("reading the CA recorded in the store: %w", err)
		}
	}
	s.mu.Lock()
	s.switchAt = time.Time{}
	if p := pending(gens, now); p != nil {
		s.switchAt = p.SwitchAt
	}
	s.mu.Unlock()
	cur := Current(gens, now)
	if cur == nil {
		return s.fail(errors.New("the store records no current issuing CA"))
	}
	recordedHere := false // this node recorded the switch to cur
	if cur.PromotedAt.IsZero() && !cur.SwitchAt.IsZero() {
		ok, err := s.Store.PromoteCAGeneration(ctx, cur.IssuerID, now, pki.AuditEvent{Time: now, Type: pki.EventCAPromoted,
			Actor: "system:" + s.Node, IssuerID: cur.IssuerID, Outcome: "success",
			Detail: fmt.Sprintf("issuing CA %s current from %s", cur.IssuerID, cur.SwitchAt.UTC().Format(time.RFC3339))})
		if err != nil {
			return fmt.Errorf("recording the switch to issuing CA %s: %w", cur.IssuerID, err)
		}
		recordedHere = ok
	}
	active, _ := s.Authority.Active(now)
	if active.ID != cur.IssuerID {
		if recordedHere {
			s.Log.Info("issuing CA switched; recorded for every node (this node cannot issue with it yet)", "issuer", cur.IssuerID,
				"switch_at", cur.SwitchAt.UTC().Format(time.RFC3339))
		}
		if _, have := s.Authority.IssuerByID(cur.IssuerID); have {
			return s.fail(fmt.Errorf("the store's current issuing CA is %s since %s, this node's is %s: its schedule differs (DATA/ca/next/switch-at)",
				cur.IssuerID, cur.SwitchAt.UTC().Format(time.RFC3339), active.ID))
		}
		return s.fail(fmt.Errorf("the store's current issuing CA is %s (recorded by %s), and this node lacks its keys: %s",
			cur.IssuerID, cur.PublishedBy, s.howToGetKeys()))
	}
	s.warnNext(gens, now)
	s.mu.Lock()
	if s.problem != nil {
		s.Log.Info("this node's CA matches the store again", "issuer", cur.IssuerID)
	}
	s.problem = nil
	previous := s.issuing
	s.issuing = active.ID
	s.mu.Unlock()
	// Every node says once that it issues with another CA, not only the
	// one that recorded the switch.
	if recordedHere || previous != "" && previous != active.ID {
		msg := "issuing CA switched: this node issues with it now; another node had recorded the switch"
		if recordedHere {
			msg = "issuing CA switched: this node issues with it now and recorded the switch for every node"
		}
		s.Log.Info(msg, "subject", active.Cert.Subject.String(), "issuer", active.ID, "switch_at", cur.SwitchAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// dropDiscarded reads the generations discarded before their switch and
// has the Authority treat its next CA as absent when it is one of them (its
// files stay until the operator discards it on this node). It warns once
// each time it drops one: at the first Sync after the next CA was loaded.
// It returns the discarded generations by issuer ID.
func (s *Syncer) dropDiscarded(ctx context.Context, now time.Time) (map[string]*store.DiscardedCAGeneration, error) {
	list, err := s.Store.DiscardedCAGenerations(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the discarded CA generations in the store: %w", err)
	}
	byID := make(map[string]*store.DiscardedCAGeneration, len(list))
	ids := make([]string, len(list))
	for i := range list {
		byID[list[i].IssuerID], ids[i] = &list[i], list[i].IssuerID
	}
	// The next CA, also one past its switch time that a reload could
	// not promote (its keys destroyed in the token): Active serves it.
	var next *ca.Issuer
	if at, ok := s.Authority.SwitchAt(); ok && now.Before(at) {
		next, _, _ = s.Authority.Next(now)
	} else if ok {
		next, _ = s.Authority.Active(now)
	}
	if d := byID[nextID(next)]; s.Authority.SetDiscardedNext(ids) && d != nil {
		s.Log.Warn(fmt.Sprintf("this node's next issuing CA %s (%s) was discarded at %s by %s: this node no longer serves it and never switches to it; "+
			"run 'scepter ca rollover --discard' on this node to remove its files", next.ID, filepath.Join("DATA", "ca", ca.NextDir),
			d.DiscardedAt.UTC().Format(time.RFC3339), d.DiscardedBy), "issuer", next.ID)
	}
	return byID, nil
}

// warnUnusable logs, once, that this node's next CA is not recorded
// because its key does not sign here.
func (s *Syncer) warnUnusable(msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if msg != s.unusable {
		s.Log.Warn(msg)
	}
	s.unusable = msg
}

func nextID(next *ca.Issuer) string {
	if next == nil {
		return ""
	}
	return next.ID
}

// warnNext logs, once, a next generation in the store that this node will
// not be able to switch to at its time.
func (s *Syncer) warnNext(gens []store.CAGeneration, now time.Time) {
	p := pending(gens, now)
	msg := ""
	var lacking *pki.RA
	if p != nil {
		next, _, ok := s.Authority.Next(now)
		at, _ := s.Authority.SwitchAt()
		if !ok || next.ID != p.IssuerID {
			var err error
			if lacking, err = s.lackedRA(p); err != nil {
				s.Log.Warn("reading the store's next CA", "err", err)
			}
		}
		switch {
		case !ok || next.ID != p.IssuerID:
			msg = fmt.Sprintf("the store schedules issuing CA %s from %s, and this node lacks its keys: get them before then (%s), or this node stops being ready at the switch",
				p.IssuerID, p.SwitchAt.UTC().Format(time.RFC3339), s.howToGetKeys())
		case !at.Equal(p.SwitchAt):
			msg = fmt.Sprintf("the store schedules issuing CA %s from %s, this node from %s: the store's time wins, and this node stops being ready until its schedule agrees",
				p.IssuerID, p.SwitchAt.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if msg != "" && msg != s.reported {
		s.Log.Warn(msg)
	}
	s.reported = msg
	s.lacking = lacking
	if p != nil {
		s.lackingUntil = p.SwitchAt
	}
}

// howToGetKeys says how this node gets the keys of a generation it lacks:
// export-keys refuses keys in a token, where the node needs only the
// certificates and references of DATA/ca.
func (s *Syncer) howToGetKeys() string {
	if s.Authority.Token() != nil || s.Authority.KeysInToken() {
		return "copy DATA/ca from a node that has them: with the keys in the token it holds only certificates and .pkcs11 references (leave root.key out)"
	}
	return "'scepter ca export-keys' on a node that has them, 'scepter ca import-keys' here"
}

func (s *Syncer) fail(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.problem == nil || s.problem.Error() != err.Error() {
		s.Log.Error("this node cannot serve as the store's CA", "err", err)
	}
	s.problem = err
	return err
}

// publishLate records iss, which became current on this node at since
// without the store knowing, when the store would have taken it before
// since: nothing scheduled from since on, and the generation it replaces
// in the store one this node holds (not another node's rollover that
// came while this node was away).
func (s *Syncer) publishLate(ctx context.Context, gens []store.CAGeneration, iss *ca.Issuer, ra *pki.RA, since time.Time) error {
	at := since.UTC().Format(time.RFC3339)
	for _, g := range gens {
		if !g.SwitchAt.Before(since) {
			return fmt.Errorf("this node switched to issuing CA %s at %s, which the store does not record, and the store schedules issuing CA %s from %s (recorded by %s): "+
				"this node's schedule differs; bring the store's CA here (%s)",
				iss.ID, at, g.IssuerID, g.SwitchAt.UTC().Format(time.RFC3339), g.PublishedBy, s.howToGetCA())
		}
	}
	if before := Current(gens, since.Add(-time.Nanosecond)); before != nil {
		if _, have := s.Authority.IssuerByID(before.IssuerID); !have {
			return fmt.Errorf("this node switched to issuing CA %s at %s, which the store does not record, and the store's issuing CA then was %s (recorded by %s), which this node never had: "+
				"this node's schedule differs; bring the store's CA here (%s)",
				iss.ID, at, before.IssuerID, before.PublishedBy, s.howToGetCA())
		}
	}
	return s.publish(ctx, iss, ra, since)
}

// howToGetCA says how a node whose CA went another way than the store's
// takes the store's: its whole CA directory from a node that serves it.
func (s *Syncer) howToGetCA() string {
	if s.Authority.Token() != nil || s.Authority.KeysInToken() {
		return "move DATA/ca aside and copy DATA/ca from a node that serves the store's CA, leaving root.key out"
	}
	return "move DATA/ca aside, then 'scepter ca export-keys' on a node that serves the store's CA and 'scepter ca import-keys' here"
}

// errKeyUnusable: a generation's issuing CA key does not sign on this node.
var errKeyUnusable = errors.New("its issuing CA key does not sign here")

// publish records one generation of this node's CA. A generation after
// the first is recorded only once its key has made a signature here that
// its certificate verifies: recorded, it becomes every node's CA at its
// switch time, and one whose key is gone (a token's keys destroyed by a
// discard elsewhere) would leave no node able to issue.
func (s *Syncer) publish(ctx context.Context, iss *ca.Issuer, ra *pki.RA, switchAt time.Time) error {
	if !switchAt.IsZero() {
		if err := probeKey(iss); err != nil {
			return fmt.Errorf("%w (%v): check that its key is in %s, or discard it with 'scepter ca rollover --discard'", errKeyUnusable, err, filepath.Join("DATA", "ca", ca.NextDir))
		}
	}
	now := s.Clock.Now()
	g := store.CAGeneration{IssuerID: iss.ID, RootFingerprint: s.Authority.RootFingerprint(), IssuerDER: iss.Cert.Raw,
		SwitchAt: switchAt, PublishedAt: now, PublishedBy: s.Node}
	if ra != nil && !ra.IsCA {
		g.RADER = ra.Cert.Raw
	}
	detail := fmt.Sprintf("issuing CA %s (%s) recorded as the store's CA", iss.ID, iss.Cert.Subject)
	if !switchAt.IsZero() {
		detail = fmt.Sprintf("issuing CA %s (%s) scheduled from %s", iss.ID, iss.Cert.Subject, switchAt.UTC().Format(time.RFC3339))
	}
	ins, err := s.Store.PublishCAGeneration(ctx, g, pki.AuditEvent{Time: now, Type: pki.EventCAPublished,
		Actor: "system:" + s.Node, IssuerID: iss.ID, Outcome: "success", Detail: detail})
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("%w: %v", ErrNotThisCA, err)
	}
	if err != nil {
		return fmt.Errorf("recording issuing CA %s in the store: %w", iss.ID, err)
	}
	if ins {
		s.Log.Info("CA recorded in the store", "issuer", iss.ID, "switch_at", switchAt)
	}
	return nil
}

// probeKey signs a fixed message with iss's key and verifies the
// signature with its certificate: the key is there and is the
// certificate's.
func probeKey(iss *ca.Issuer) error {
	msg := []byte("scepter: probe of the issuing CA key " + iss.ID)
	digest := sha256.Sum256(msg)
	var alg x509.SignatureAlgorithm
	switch iss.Cert.PublicKey.(type) {
	case *rsa.PublicKey:
		alg = x509.SHA256WithRSA
	case *ecdsa.PublicKey:
		alg = x509.ECDSAWithSHA256
	default:
		return fmt.Errorf("unsupported key type %T", iss.Cert.PublicKey)
	}
	sig, err := iss.Signer.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return err
	}
	if err := iss.Cert.CheckSignature(alg, msg, sig); err != nil {
		return fmt.Errorf("its signature does not verify: %w", err)
	}
	return nil
}

func recorded(gens []store.CAGeneration, id string) bool {
	return slices.ContainsFunc(gens, func(g store.CAGeneration) bool { return g.IssuerID == id })
}

// IssuesCurrent says whether a issues with the store's current
// generation: nil when it does (or the store records none yet), else why
// not. It only reads, for commands that issue outside a server (`scepter
// requests approve`), which must not issue from a CA the nodes have left.
func IssuesCurrent(ctx context.Context, st store.Store, a *ca.Authority, now time.Time) error {
	gens, err := st.CAGenerations(ctx)
	if err != nil {
		return fmt.Errorf("reading the CA recorded in the store: %w", err)
	}
	cur := Current(gens, now)
	if cur == nil {
		return nil
	}
	if active, _ := a.Active(now); active.ID != cur.IssuerID {
		return fmt.Errorf("the store's current issuing CA is %s (since %s), this data directory's is %s: run this where the current CA's keys are, or import them (scepter ca import-keys)",
			cur.IssuerID, cur.SwitchAt.UTC().Format(time.RFC3339), active.ID)
	}
	return nil
}

// Current is the generation with the latest switch time at or before now:
// the issuing CA in effect (nil before the first).
func Current(gens []store.CAGeneration, now time.Time) *store.CAGeneration {
	var cur *store.CAGeneration
	for i := range gens {
		if g := &gens[i]; !g.SwitchAt.After(now) && (cur == nil || g.SwitchAt.After(cur.SwitchAt)) {
			cur = g
		}
	}
	return cur
}

// pending is the earliest generation scheduled after now.
func pending(gens []store.CAGeneration, now time.Time) *store.CAGeneration {
	var p *store.CAGeneration
	for i := range gens {
		if g := &gens[i]; g.SwitchAt.After(now) && (p == nil || g.SwitchAt.Before(p.SwitchAt)) {
			p = g
		}
	}
	return p
}

// Rollover makes a next issuing CA in dataDir (ca.Rollover with opts) and
// records it in the store at once, for `scepter ca rollover`. Under the
// store's CA setup lock (PostgreSQL; SQLite has one node), the store is
// checked for another node's next CA first (CheckRollover), so that of
// two rollovers on two nodes the second is refused instead of scheduling
// a CA of its own that the nodes then disagree about. Without the record
// here, the store would learn of the next CA only at a server's next
// reload, and a rollover meanwhile would get through.
func Rollover(ctx context.Context, st store.Store, dataDir string, opts ca.RolloverOptions, clock pki.Clock, node string) (*ca.Issuer, *pki.RA, error) {
	unlock, err := LockCAChanges(ctx, st)
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	now := clock.Now()
	var localNext string
	if a, err := ca.Load(dataDir, clock); err == nil {
		if next, _, ok := a.Next(now); ok {
			localNext = next.ID
		}
	}
	if err := CheckRollover(ctx, st, now, localNext); err != nil {
		return nil, nil, err
	}
	iss, ra, err := ca.Rollover(dataDir, opts, clock)
	if err != nil {
		return nil, nil, err
	}
	a, err := ca.Load(dataDir, clock)
	if err != nil {
		return nil, nil, err
	}
	gens, err := st.CAGenerations(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the CA recorded in the store: %w", err)
	}
	if len(gens) == 0 {
		// No server has recorded the CA yet: the first to start records
		// the current CA and this one after it.
		return iss, ra, nil
	}
	s := &Syncer{Store: st, Authority: a, Clock: clock, Node: node, Log: slog.New(slog.DiscardHandler)}
	at, _ := a.SwitchAt()
	if err := s.publish(ctx, iss, ra, at); err != nil {
		return nil, nil, fmt.Errorf("the next CA was created in %s, but could not be recorded in the store (servers record it at their next reload): %w",
			filepath.Join(dataDir, "ca", "next"), err)
	}
	return iss, ra, nil
}

// RevokeIssuedBy revokes in the inventory, for cessationOfOperation, every
// certificate the discarded issuing CA issuerID issued that is not revoked
// yet (its RA and OCSP responder certificates, made before its switch), so
// that none stays listed as valid under a CA that no longer exists. Each
// is audited with actor. It returns how many it revoked.
func RevokeIssuedBy(ctx context.Context, st store.Store, issuerID string, now time.Time, actor string) (int, error) {
	// Collected first: the pages filter by status, which each revocation
	// changes.
	var valid []pki.Certificate
	for cursor := ""; ; {
		page, next, err := st.ListCertificates(ctx, store.CertFilter{IssuerID: issuerID, Status: pki.StatusValid, Limit: 1000, Cursor: cursor})
		if err != nil {
			return 0, fmt.Errorf("listing the certificates of issuing CA %s: %w", issuerID, err)
		}
		valid = append(valid, page...)
		if next == "" {
			break
		}
		cursor = next
	}
	cessationOfOperation, _ := pki.ReasonName(pki.ReasonCessationOfOperation)
	n := 0
	for _, c := range valid {
		ev := pki.AuditEvent{Time: now, Type: pki.EventRevoked, Actor: actor, Profile: c.Profile, SerialHex: c.SerialHex,
			IssuerID: c.IssuerID, Subject: c.Subject, Outcome: "success", Reason: cessationOfOperation,
			Detail: fmt.Sprintf("issued by next issuing CA %s, discarded before its switch", issuerID)}
		_, changed, err := st.RevokeCertificate(ctx, c.IssuerID, c.SerialHex, pki.ReasonCessationOfOperation, now, ev)
		if err != nil {
			return n, fmt.Errorf("revoking %s of the discarded issuing CA %s: %w", pki.ShownSerial(c.SerialHex), issuerID, err)
		}
		if changed {
			n++
		}
	}
	return n, nil
}
