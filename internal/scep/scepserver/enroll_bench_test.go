//go:build unix

package scepserver_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/crl"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/metrics"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/scep/scepserver"
	"github.com/scepter/scepter/internal/server"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// The enrollment benchmarks run one SCEP PKCSReq after another through the
// server as `scepter serve` wires it, without the network: the plain
// listener's mux with its metrics instrumentation, the SCEP handler, the
// enrollment service with the production lints, the CA and the SQLite store
// (every commit fsynced), logging formatted as by --log-format text but
// thrown away. The requests are built before the clock starts, each with a
// CSR of its own, so what is timed is the server only. Besides ns/op
// (wall time), they report cpu-ms/enroll: the process's user+system CPU
// time per enrollment, to put against internal/bench/floor's ms/enroll.

var benchEnrollNow = time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)

const benchChallenge = "bench-challenge-0123456789"

// benchEnrollConfigs are the two configurations of issue 12, and the
// default one with EC clients, whose replies are password-based envelopes.
// Their CA and RA keys make their RSA operations as serve's default
// (--rsa-backend auto) does: through OpenSSL where libcrypto.so.3 loads,
// else Go's crypto/rsa. The -go configurations are the first two with Go's
// crypto/rsa (--rsa-backend go), as internal/bench/floor's -go floors.
var benchEnrollConfigs = []struct {
	name      string
	ca        ca.InitOptions
	clientKey string
	goRSA     bool
}{
	{"default", ca.InitOptions{KeyType: keys.P256}, keys.RSA2048, false},                 // P-256 CA + separate RSA-2048 RA
	{"rsa-ca", ca.InitOptions{KeyType: keys.RSA2048, RAMode: "ca"}, keys.RSA2048, false}, // --ca-key-type rsa2048 --scep-ra ca
	{"default-p256-clients", ca.InitOptions{KeyType: keys.P256}, keys.P256, false},
	{"default-go", ca.InitOptions{KeyType: keys.P256}, keys.RSA2048, true},
	{"rsa-ca-go", ca.InitOptions{KeyType: keys.RSA2048, RAMode: "ca"}, keys.RSA2048, true},
}

type benchServer struct {
	handler   http.Handler
	raCert    *x509.Certificate
	clock     *pkitest.Clock
	clientKey string // the key type of its clients
}

func newBenchServer(b *testing.B, opts ca.InitOptions, clientKey string, goRSA bool) *benchServer {
	b.Helper()
	if !goRSA {
		opts.WrapKey = pkitest.WrapKeyAsServe(b)
	}
	dir := b.TempDir()
	clock := pkitest.NewClock(benchEnrollNow)
	authority, _, err := ca.LoadOrCreate(dir, opts, clock)
	if err != nil {
		b.Fatal(err)
	}
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "scepter.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	m := metrics.New(metrics.Options{Clock: clock, Log: log})
	st := m.Store(db)
	publisher := crl.New(st, authority, clock, log, crl.Config{})
	svc, err := enroll.New(st, authority, clock, log, enroll.Config{StaticChallenge: benchChallenge,
		PublicURL: "http://127.0.0.1:8080", CRLs: publisher, Observer: m})
	if err != nil {
		b.Fatal(err)
	}
	h, err := scepserver.New(svc, clock, log, scepserver.Options{})
	if err != nil {
		b.Fatal(err)
	}
	mux, err := server.PlainMux(server.Handlers{SCEP: h, Metrics: m})
	if err != nil {
		b.Fatal(err)
	}
	bs := &benchServer{handler: m.Instrument("http", mux), raCert: svc.ActiveRA().Cert, clock: clock, clientKey: clientKey}
	// The first enrollment prepares what a server prepares once (the
	// linter, the caches): not timed.
	pool := bs.pool(b, 1)
	bs.check(b, pool, [][]byte{bs.serve(b, pool[0])})
	return bs
}

// benchClients are a few client keys of each type with their self-signed
// signer certificates, made once per test binary: the server's work does
// not depend on which key of a type signs.
var (
	benchClientsMu sync.Mutex
	benchClients   = map[string][]benchClient{}
)

type benchClient struct {
	key    crypto.Signer
	signer *x509.Certificate
}

func clients(b *testing.B, keyType string) []benchClient {
	b.Helper()
	benchClientsMu.Lock()
	defer benchClientsMu.Unlock()
	for len(benchClients[keyType]) < 4 {
		key, err := keys.Generate(keyType)
		if err != nil {
			b.Fatal(err)
		}
		der, err := csr.Create(csr.Template{Subject: pkix.Name{CommonName: "bench-signer"}}, key)
		if err != nil {
			b.Fatal(err)
		}
		req, err := x509.ParseCertificateRequest(der)
		if err != nil {
			b.Fatal(err)
		}
		cert, err := client.SelfSigned(req, key, benchEnrollNow)
		if err != nil {
			b.Fatal(err)
		}
		benchClients[keyType] = append(benchClients[keyType], benchClient{key, cert})
	}
	return benchClients[keyType]
}

// benchRequest is one pre-built PKCSReq.
type benchRequest struct {
	der  []byte
	txID string
}

// pool builds n PKCSReqs on every core: each a CSR of its own (subject
// CN=bench-RUN-i, one DNS name, the challenge), enveloped to the RA with
// AES-128-CBC and PKCS #1 v1.5, signed with SHA-256.
func (bs *benchServer) pool(b *testing.B, n int) []benchRequest {
	b.Helper()
	cl := clients(b, bs.clientKey)
	run := make([]byte, 4)
	if _, err := rand.Read(run); err != nil {
		b.Fatal(err)
	}
	out := make([]benchRequest, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, runtime.GOMAXPROCS(0))
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				r, err := bs.request(cl[i%len(cl)], fmt.Sprintf("bench-%x-%d", run, i))
				if err != nil {
					errs <- err
					return
				}
				out[i] = r
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	return out
}

func (bs *benchServer) request(c benchClient, cn string) (benchRequest, error) {
	der, err := csr.Create(csr.Template{Subject: pkix.Name{CommonName: cn, Organization: []string{"Acme"}},
		DNSNames: []string{cn + ".acme.example"}, ChallengePassword: benchChallenge}, c.key)
	if err != nil {
		return benchRequest{}, err
	}
	env, err := cms.Encrypt(der, []*x509.Certificate{bs.raCert}, cms.EncryptOptions{Cipher: cms.AES128CBC, KeyTransport: cms.RSAPKCS1v15})
	if err != nil {
		return benchRequest{}, err
	}
	nonce, err := scep.NewNonce()
	if err != nil {
		return benchRequest{}, err
	}
	txID := hex.EncodeToString(nonce)
	msg, err := scep.BuildRequest(scep.Request{Type: scep.PKCSReq, TransactionID: txID, SenderNonce: nonce, Digest: crypto.SHA256,
		Envelope: env, SigningTime: bs.clock.Now()}, scep.Identity{Cert: c.signer, Key: c.key})
	if err != nil {
		return benchRequest{}, err
	}
	return benchRequest{der: msg, txID: txID}, nil
}

// serve sends one request through the server in-process and returns the
// body of its answer.
func (bs *benchServer) serve(b *testing.B, r benchRequest) []byte {
	req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8080/scep?operation=PKIOperation", bytes.NewReader(r.der))
	req.RemoteAddr = "127.0.0.1:40000"
	req.Header.Set("Content-Type", "application/x-pki-message")
	rec := httptest.NewRecorder()
	bs.handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Errorf("HTTP %d: %s", rec.Code, rec.Body.Bytes())
	}
	return rec.Body.Bytes()
}

// check makes sure every answer is a SUCCESS CertRep to its request.
func (bs *benchServer) check(b *testing.B, pool []benchRequest, replies [][]byte) {
	b.Helper()
	for i, body := range replies {
		rep, err := scep.Parse(body)
		if err != nil {
			b.Fatalf("reply %d: %v", i, err)
		}
		if rep.MessageType != scep.CertRep || rep.PKIStatus != scep.StatusSuccess || rep.TransactionID != pool[i].txID {
			b.Fatalf("reply %d: %v %v (failInfo %v: %s)", i, rep.MessageType, rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
		}
	}
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, cpu time.Duration) {
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/1e6, "cpu-ms/enroll")
}

// BenchmarkSCEPEnroll: one PKCSReq after another, each answered before the
// next is sent.
func BenchmarkSCEPEnroll(b *testing.B) {
	for _, c := range benchEnrollConfigs {
		bs := newBenchServer(b, c.ca, c.clientKey, c.goRSA)
		b.Run(c.name, func(b *testing.B) {
			pool := bs.pool(b, b.N)
			replies := make([][]byte, b.N)
			runtime.GC()
			b.ResetTimer()
			cpu0 := cpuTime(b)
			for i := 0; i < b.N; i++ {
				replies[i] = bs.serve(b, pool[i])
			}
			cpu := cpuTime(b) - cpu0
			b.StopTimer()
			reportCPU(b, cpu)
			bs.check(b, pool, replies)
		})
	}
}

// BenchmarkSCEPEnrollParallel: 4 clients per CPU (8 on two cores, the
// issue's concurrency 8) sending PKCSReqs at once; ns/op is wall time per
// enrollment, cpu-ms/enroll what each cost.
func BenchmarkSCEPEnrollParallel(b *testing.B) {
	for _, c := range benchEnrollConfigs {
		bs := newBenchServer(b, c.ca, c.clientKey, c.goRSA)
		b.Run(c.name, func(b *testing.B) {
			pool := bs.pool(b, b.N)
			replies := make([][]byte, b.N)
			var next atomic.Int64
			b.SetParallelism(4)
			runtime.GC()
			b.ResetTimer()
			cpu0 := cpuTime(b)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1) - 1
					replies[i] = bs.serve(b, pool[i])
				}
			})
			cpu := cpuTime(b) - cpu0
			b.StopTimer()
			reportCPU(b, cpu)
			bs.check(b, pool, replies)
		})
	}
}
