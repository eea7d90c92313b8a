package client

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A server that sends headers without end gets the reply refused once it
// passes maxReplyBytes, not the client's memory.
func TestESTEndlessHeaders(t *testing.T) {
	later := trustNow.Add(time.Hour)
	ca := issue(t, "ca", nil, true, later)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"}, NotBefore: trustNow.Add(-time.Hour),
		NotAfter: later, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leaf := issue(t, "unused", nil, false, later)
	der, err := x509.CreateCertificate(nil, tmpl, ca.cert, leaf.key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: leaf.key}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sent := make(chan int64, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		if _, err := http.ReadRequest(bufio.NewReader(conn)); err != nil {
			return
		}
		var n int64
		conn.Write([]byte("HTTP/1.1 200 OK\r\nX-Endless: "))
		chunk := []byte(strings.Repeat("a", 64<<10))
		for n < 64<<20 { // far more than the client may take

			if _, err := conn.Write(chunk); err != nil {
				break
			}
			n += int64(len(chunk))
		}
		sent <- n
	}()
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	c := &EST{URL: "https://" + ln.Addr().String(), Roots: roots, Timeout: 20 * time.Second, Now: func() time.Time { return trustNow }}
	_, err = c.CACerts(context.Background())
	if err == nil || !strings.Contains(err.Error(), "headers are larger than") {
		t.Fatalf("err = %v, want the reply's headers refused as too large", err)
	}
	ln.Close()
	// What the server wrote before the client hung up is what the client
	// took plus the sockets' buffers: far from all of it.
	if n := <-sent; n >= 32<<20 {
		t.Errorf("the server wrote %d bytes of headers before the client hung up", n)
	}
}
