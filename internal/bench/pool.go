package bench

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/keys"
)

// MaxPoolCSRs bounds the CSRs built before the clock starts when keys are
// reused (Count above Pool): beyond it, SCEP CSRs are sent again. Our
// server refuses no repeated subject or key at a profile without
// approval; each SCEP enrollment still carries a transaction of its own.
// An EST CSR sent again is a resend (the server answers it with the
// certificate it issued for the key and names), so an EST enrollment
// beyond the pool signs a CSR of its own (pool.csrFor).
const MaxPoolCSRs = 200000

// poolKey is a client key and, for SCEP, the self-signed certificate that
// signs its requests (RFC 8894 §2.3).
type poolKey struct {
	key    crypto.Signer
	signer *x509.Certificate
}

// poolItem is one pre-built CSR.
type poolItem struct {
	key  int    // index in pool.keys
	der  []byte // the CSR
	b64  []byte // EST: the CSR as the request body
	spki []byte // the CSR's public key, to check the certificate against
}

// pool is everything made before the clock starts.
type pool struct {
	keys  []poolKey
	items []poolItem
	runID string // in each CSR's subject, CN=bench-RUN-N
}

// item is the CSR of enrollment i.
func (p *pool) item(i int) *poolItem { return &p.items[i%len(p.items)] }

// csrFor is the EST request body of enrollment i, of item: the pool's
// CSR, or past the pool's CSRs one of its own, of the item's key, signed
// now (see MaxPoolCSRs).
func (p *pool) csrFor(i int, item *poolItem) ([]byte, error) {
	if i < len(p.items) {
		return item.b64, nil
	}
	der, err := csr.Create(csr.Template{Subject: pkix.Name{CommonName: fmt.Sprintf("bench-%s-%d", p.runID, i)}}, p.keys[item.key].key)
	if err != nil {
		return nil, fmt.Errorf("the CSR of enrollment %d: %w", i, err)
	}
	return est.EncodeBase64(der), nil
}

// buildPool makes the keys, the CSRs (each with a subject of its own,
// CN=bench-RUN-N) and the signer certificates, on every core.
func buildPool(ctx context.Context, o *Options) (*pool, error) {
	nItems := o.poolCount()
	if nItems == 0 {
		// Bounded by time: a CSR costs one signature, far less than
		// an RSA key, so up to ten per key, 1,000 in all.
		nItems = max(o.Pool, min(10*o.Pool, 1000))
	}
	nItems = min(nItems, max(o.Pool, MaxPoolCSRs))
	if o.Count > 0 {
		nItems = min(nItems, o.Count)
	}
	nKeys := min(o.Pool, nItems)
	p := &pool{keys: make([]poolKey, nKeys), items: make([]poolItem, nItems)}
	run := make([]byte, 4)
	if _, err := rand.Read(run); err != nil {
		return nil, err
	}
	runID := hex.EncodeToString(run)
	p.runID = runID
	start := time.Now()
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "bench: building the pool: %d %s keys, %d CSRs (before the clock starts)\n", nKeys, o.KeyType, nItems)
		switch {
		case o.Duration > 0 && o.Count > MaxPrepared:
			fmt.Fprintf(o.Progress, "bench: --count %d with --duration: a pool as for --duration alone, its CSRs reused\n", o.Count)
		case o.Duration > 0 && o.Count > 0:
			fmt.Fprintf(o.Progress, "bench: --count %d with --duration: the requests of all %d are built before the clock, whether the run reaches them or not (--duration alone builds fewer)\n", o.Count, o.Count)
		}
	}
	if made, err := parallel(ctx, nKeys, func(i int) error {
		k, err := keys.Generate(o.KeyType)
		p.keys[i].key = k
		return err
	}); err != nil {
		return nil, stopped(err, "building the pool", fmt.Sprintf("%d of %d %s keys made", made, nKeys, o.KeyType))
	}
	challenge := ""
	if o.Protocol == SCEP {
		challenge = o.Challenge
	}
	if made, err := parallel(ctx, nItems, func(i int) error {
		k := i % nKeys
		der, err := csr.Create(csr.Template{Subject: pkix.Name{CommonName: fmt.Sprintf("bench-%s-%d", runID, i)},
			ChallengePassword: challenge}, p.keys[k].key)
		if err != nil {
			return err
		}
		req, err := x509.ParseCertificateRequest(der)
		if err != nil {
			return err
		}
		it := poolItem{key: k, der: der, spki: req.RawSubjectPublicKeyInfo}
		if o.Protocol == EST {
			it.b64 = est.EncodeBase64(der)
		}
		if o.Protocol == SCEP && i < nKeys {
			// Item i < nKeys is the first CSR of key i.
			if p.keys[k].signer, err = client.SelfSigned(req, p.keys[k].key, o.Now()); err != nil {
				return err
			}
		}
		p.items[i] = it
		return nil
	}); err != nil {
		return nil, stopped(err, "building the pool", fmt.Sprintf("all %d keys made, %d of %d CSRs", nKeys, made, nItems))
	}
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "bench: pool ready in %.1fs\n", time.Since(start).Seconds())
	}
	return p, nil
}

// parallel calls f(0..n-1) on every core and returns how many of the
// calls succeeded and the first error: ctx's when it ended first.
func parallel(ctx context.Context, n int, f func(i int) error) (int, error) {
	var next, done atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				err := ctx.Err()
				if err == nil {
					err = f(i)
				}
				if err == nil {
					done.Add(1)
				} else {
					once.Do(func() { first = err })
					next.Store(int64(n))
					return
				}
			}
		}()
	}
	wg.Wait()
	return int(done.Load()), first
}

// interruptedError is a run interrupted before its clock started: it says
// what it was doing and how far it got, not only "context canceled".
type interruptedError struct {
	doing, progress string
	err             error
}

func (e *interruptedError) Error() string {
	return fmt.Sprintf("interrupted while %s: %s", e.doing, e.progress)
}
func (e *interruptedError) Unwrap() error { return e.err }

// stopped is err, an error of a step before the clock (doing), said as an
// interrupt when it is one, with how far the step got; other errors say
// what they say.
func stopped(err error, doing, progress string) error {
	if errors.Is(err, context.Canceled) {
		return &interruptedError{doing: doing, progress: progress, err: err}
	}
	return err
}
