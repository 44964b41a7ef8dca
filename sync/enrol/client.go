package enrol

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Paths of the hub's enrolment endpoint (hub/enrol serves them).
const (
	EnrolPath   = "/v1/enrol"
	RefreshPath = "/v1/refresh"
)

// Request is what a device POSTs to EnrolPath.
type Request struct {
	Token  string `json:"token"`
	Device string `json:"device"`
}

// ErrPinMismatch is a hub whose certificate is not the one the code names: the device does not enrol.
var ErrPinMismatch = errors.New("the hub's TLS certificate does not match the pin in the enrolment code: the code was " +
	"made for another hub (or the hub's certificate was replaced since), or something between is impersonating it; " +
	"mint a new code on the right hub")

// HubError is an enrolment the hub refused, with the hub's reason.
type HubError struct {
	Status int
	Msg    string
}

func (e *HubError) Error() string {
	return fmt.Sprintf("the hub refused (HTTP %d): %s", e.Status, e.Msg)
}

// PinnedTLS trusts exactly the certificate whose public key has the pin, and no CA: the pin came with the code,
// and holding the code is the authorisation.
func PinnedTLS(p Pin) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The chain is not checked against any CA; VerifyConnection checks the pin instead.
		InsecureSkipVerify: true, //nolint:gosec
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return ErrPinMismatch
			}
			if got := PinOf(cs.PeerCertificates[0]); got != p {
				return fmt.Errorf("%w (the hub's pin is %s, the code's %s)", ErrPinMismatch, got, p)
			}
			return nil
		},
	}
}

// Enrol spends the code's token at the hub and returns the hub's answer, checked against the code.
func Enrol(ctx context.Context, c Code) (Answer, error) {
	body, _ := json.Marshal(Request{Token: c.Token, Device: c.Device})
	a, err := post(ctx, c.URL+EnrolPath, c.Pin, body, "", "")
	if err != nil {
		return Answer{}, err
	}
	if a.Device != c.Device || a.Site != c.Site || a.Direction != c.Direction {
		return Answer{}, fmt.Errorf("enrolment answer is for device %s at site %s (%s), the code for %s at %s (%s): not applied",
			a.Device, a.Site, a.Direction, c.Device, c.Site, c.Direction)
	}
	return a, nil
}

// Refresh asks the hub for fresh credentials and keys with the device's current ones: how keys rotate without
// re-provisioning. The current password stops working once the hub answers.
func Refresh(ctx context.Context, s State, password string) (Answer, error) {
	pin, err := ParsePin(s.HubPin)
	if err != nil {
		return Answer{}, fmt.Errorf("provisioned.json hub_pin: %v", err)
	}
	a, err := post(ctx, s.Hub+RefreshPath, pin, nil, s.Username, password)
	if err != nil {
		return Answer{}, err
	}
	if a.Device != s.Device {
		return Answer{}, fmt.Errorf("refresh answer is for device %s, this is %s: not applied", a.Device, s.Device)
	}
	return a, nil
}

func post(ctx context.Context, url string, pin Pin, body []byte, user, password string) (Answer, error) {
	cl := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: PinnedTLS(pin),
		ForceAttemptHTTP2: false, TLSHandshakeTimeout: 10 * time.Second}}
	defer cl.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Answer{}, fmt.Errorf("enrol at %s: %v", url, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := cl.Do(req)
	if err != nil {
		if errors.Is(err, ErrPinMismatch) {
			return Answer{}, err
		}
		return Answer{}, fmt.Errorf("enrol at %s: %v (is the hub running, and this address reachable from here?)", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswerBytes+1))
	if err != nil {
		return Answer{}, fmt.Errorf("enrol at %s: reading the answer: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(clip(string(b)))
		}
		return Answer{}, &HubError{Status: resp.StatusCode, Msg: e.Error}
	}
	return DecodeAnswer(b)
}
