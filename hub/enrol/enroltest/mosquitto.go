// Package enroltest starts a real Mosquitto the way docs/provisioning.md sets one up — TLS listener, no anonymous
// clients, the dynamic security plugin — on free ports, for the provisioning tests of hub/enrol and cmd/vaorad.
package enroltest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// examplePlugin is the plugin path configs/mosquitto-secure.example.conf names (an amd64 machine's).
const examplePlugin = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"

// dynsec is where Debian's mosquitto package put the dynamic security plugin on this machine ("" if nowhere).
func dynsec() string {
	m, _ := filepath.Glob("/usr/lib/*/mosquitto_dynamic_security.so")
	if len(m) == 0 {
		return ""
	}
	return m[0]
}

// Mosquitto is a private broker with a plain listener (for the hub, on 127.0.0.1) and a TLS one (for devices).
type Mosquitto struct {
	PlainURL, TLSURL string
	CAPEM            string // the CA of the TLS listener's certificate
	Admin, AdminPass string // the dynamic security admin
	cmd              *exec.Cmd
	done             chan struct{}
}

// TLS trusts the broker's CA.
func (m *Mosquitto) TLS() *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(m.CAPEM))
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// Need skips the test unless VAORA_TEST_MQTT is set and mosquitto, mosquitto_ctrl and the plugin are here.
func Need(t testing.TB) {
	t.Helper()
	if os.Getenv("VAORA_TEST_MQTT") == "" {
		t.Skip("VAORA_TEST_MQTT not set: skipping the provisioning test against a real Mosquitto (CI runs it)")
	}
	for _, bin := range []string{"mosquitto", "mosquitto_ctrl"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not on PATH: skipping (apt-get install mosquitto mosquitto-clients)", bin)
		}
	}
	if dynsec() == "" {
		t.Skip("mosquitto_dynamic_security.so not under /usr/lib/*/: skipping (Debian's mosquitto package ships it)")
	}
}

// Start runs the broker until the test ends.
func Start(t testing.TB) *Mosquitto {
	t.Helper()
	Need(t)
	dir, err := os.MkdirTemp("", "vaora-mosquitto-secure-")
	if err != nil {
		t.Fatal(err)
	}
	// Mosquitto drops from root to its own user: it must read the certificates and write the dynsec file.
	os.Chmod(dir, 0o777)
	t.Cleanup(func() { os.RemoveAll(dir) })
	caPEM, certPEM, keyPEM := certificates(t)
	for name, b := range map[string][]byte{"ca.pem": caPEM, "server.pem": certPEM, "server.key": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m := &Mosquitto{CAPEM: string(caPEM), Admin: "admin", AdminPass: rand.Text()}
	dyn := filepath.Join(dir, "dynsec.json")
	if out, err := exec.Command("mosquitto_ctrl", "dynsec", "init", dyn, m.Admin, m.AdminPass).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_ctrl dynsec init: %v\n%s", err, out)
	}
	os.Chmod(dyn, 0o666)
	plain, secure := freePort(t), freePort(t)
	// The shipped example, with this test's ports and files.
	example, err := os.ReadFile(filepath.Join(repoRoot(t), "configs", "mosquitto-secure.example.conf"))
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer(
		examplePlugin, dynsec(),
		"/var/lib/mosquitto/dynamic-security.json", dyn,
		"persistence true", "persistence false",
		"listener 1883 127.0.0.1", fmt.Sprintf("listener %d 127.0.0.1", plain),
		"listener 8883", fmt.Sprintf("listener %d 127.0.0.1", secure),
		"/etc/mosquitto/certs/", dir+"/",
	).Replace(string(example))
	if strings.Count(conf, dir+"/") < 4 || strings.Contains(conf, "\nlistener 8883") || !strings.Contains(conf, "\nplugin "+dynsec()) {
		t.Fatalf("configs/mosquitto-secure.example.conf changed shape; update enroltest:\n%s", conf)
	}
	confPath := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	m.cmd = exec.Command("mosquitto", "-c", confPath)
	m.cmd.Stderr = os.Stderr
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}
	m.done = make(chan struct{})
	go func() { m.cmd.Wait(); close(m.done) }()
	t.Cleanup(func() { m.cmd.Process.Kill(); <-m.done })
	m.PlainURL = fmt.Sprintf("tcp://127.0.0.1:%d", plain)
	m.TLSURL = fmt.Sprintf("ssl://localhost:%d", secure)
	deadline := time.Now().Add(10 * time.Second)
	for _, port := range []int{plain, secure} {
		for {
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-m.done:
				t.Fatal("mosquitto exited at start")
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("mosquitto did not listen on port %d", port)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return m
}

// repoRoot finds the module's root from the test's working directory.
func repoRoot(t testing.TB) string {
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// certificates makes a CA and a server certificate for localhost and 127.0.0.1 signed by it.
func certificates(t testing.TB) (caPEM, certPEM, keyPEM []byte) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vaora test broker CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, srv, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}
