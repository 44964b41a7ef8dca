package enrol

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
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	syncenrol "github.com/vaora/vaora/sync/enrol"
)

// Certificate loads the enrolment endpoint's certificate and key from certFile and keyFile, making a self-signed
// one there first if neither exists. Devices do not check it against any CA: they compare its public key with the
// pin in the code, so it must stay the same for as long as codes made with it are in use (back up the key).
func Certificate(certFile, keyFile string, hosts []string) (tls.Certificate, syncenrol.Pin, error) {
	_, errC := os.Stat(certFile)
	_, errK := os.Stat(keyFile)
	switch {
	case errors.Is(errC, fs.ErrNotExist) && errors.Is(errK, fs.ErrNotExist):
		if err := makeCertificate(certFile, keyFile, hosts); err != nil {
			return tls.Certificate{}, syncenrol.Pin{}, err
		}
	case errors.Is(errC, fs.ErrNotExist) || errors.Is(errK, fs.ErrNotExist):
		return tls.Certificate{}, syncenrol.Pin{}, fmt.Errorf("enrol: %s and %s must both exist or both be absent "+
			"(then the hub makes a new pair; codes already printed stop working)", certFile, keyFile)
	}
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, syncenrol.Pin{}, fmt.Errorf("enrol: %v", err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return tls.Certificate{}, syncenrol.Pin{}, fmt.Errorf("enrol: %s: %v", certFile, err)
	}
	return c, syncenrol.PinOf(leaf), nil
}

// PinOfFile reads a certificate file's pin (vaoractl provision, on the hub's machine).
func PinOfFile(certFile string) (syncenrol.Pin, error) {
	b, err := os.ReadFile(certFile)
	if err != nil {
		return syncenrol.Pin{}, fmt.Errorf("enrol: %v (vaorahub makes it at its first start with enrol_listen set)", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return syncenrol.Pin{}, fmt.Errorf("enrol: %s holds no PEM certificate", certFile)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return syncenrol.Pin{}, fmt.Errorf("enrol: %s: %v", certFile, err)
	}
	return syncenrol.PinOf(c), nil
}

func makeCertificate(certFile, keyFile string, hosts []string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "vaora hub enrolment"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(20, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(certFile), 0o755); err != nil {
		return fmt.Errorf("enrol: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(keyFile), 0o700); err != nil {
		return fmt.Errorf("enrol: %v", err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return fmt.Errorf("enrol: %v", err)
	}
	return os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}
