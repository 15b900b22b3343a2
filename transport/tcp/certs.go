package tcp

// Throwaway certificates for tests and local clusters. Production
// deployments bring their own PKI and pass a tls.Config in Options.TLS (see
// LoadTLSConfig for reading one from PEM files).

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// TestCA is a throwaway certificate authority, made on the fly, that issues
// certificates for the nodes of a test or local cluster. It is for tests and
// local clusters only: its key lives in memory and is never protected,
// rotated or revoked.
type TestCA struct {
	Cert    *x509.Certificate
	CertPEM []byte // the CA certificate, PEM-encoded

	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

// NodeCert is a node's certificate and key issued by a TestCA, usable both
// as a server and as a client certificate.
type NodeCert struct {
	Name        string
	CertPEM     []byte // the node certificate, PEM-encoded
	KeyPEM      []byte // its ECDSA P-256 private key, PKCS #8, PEM-encoded
	CAPEM       []byte // the issuing CA's certificate, PEM-encoded
	Certificate tls.Certificate

	pool *x509.CertPool
}

// certValidity is how long TestCA certificates last.
const certValidity = 5 * 365 * 24 * time.Hour

// NewTestCA makes a new CA with an ECDSA P-256 key.
func NewTestCA() (*TestCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	id := serial.Text(16)
	id = id[:min(len(id), 8)]
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "synod test CA " + id},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &TestCA{
		Cert:    cert,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:     key,
		pool:    pool,
	}, nil
}

// Issue makes a certificate for the node called name, valid for client and
// server authentication, with subject alternative names 127.0.0.1, ::1,
// localhost, name itself (as an IP address or a DNS name) and any extra
// hosts.
func (ca *TestCA) Issue(name string, hosts ...string) (*NodeCert, error) {
	if name == "" {
		return nil, errors.New("tcp: empty node name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, h := range append([]string{name}, hosts...) {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "localhost" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	n := &NodeCert{
		Name:    name,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		CAPEM:   ca.CertPEM,
		pool:    ca.pool,
	}
	if n.Certificate, err = tls.X509KeyPair(n.CertPEM, n.KeyPEM); err != nil {
		return nil, err
	}
	return n, nil
}

// TLSConfig returns a config for Options.TLS: this node's certificate, and
// the CA as the only root for verifying both servers and clients. TLS 1.3.
func (n *NodeCert) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{n.Certificate},
		RootCAs:      n.pool,
		ClientCAs:    n.pool,
	}
}

// WriteFiles writes NAME.crt, NAME.key (mode 0600) and ca.crt into dir,
// creating it if needed; LoadTLSConfig reads them back.
func (n *NodeCert) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{n.Name + ".crt", n.CertPEM, 0o644},
		{n.Name + ".key", n.KeyPEM, 0o600},
		{"ca.crt", n.CAPEM, 0o644},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
			return err
		}
	}
	return nil
}

// GenerateCluster makes a TestCA and a NodeCert for each name. If dir is
// not empty it also writes each node's files there (see WriteFiles). For
// tests and local clusters only.
func GenerateCluster(dir string, names ...string) (*TestCA, []*NodeCert, error) {
	ca, err := NewTestCA()
	if err != nil {
		return nil, nil, err
	}
	nodes := make([]*NodeCert, 0, len(names))
	for _, name := range names {
		n, err := ca.Issue(name)
		if err != nil {
			return nil, nil, fmt.Errorf("tcp: certificate for %q: %w", name, err)
		}
		if dir != "" {
			if err := n.WriteFiles(dir); err != nil {
				return nil, nil, err
			}
		}
		nodes = append(nodes, n)
	}
	return ca, nodes, nil
}

// LoadTLSConfig builds a config for Options.TLS from PEM files: the CA
// certificate(s) that verify peers, and this node's certificate and key.
func LoadTLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("tcp: no certificate in %s", caFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ClientCAs:    pool,
	}, nil
}

func newSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}
