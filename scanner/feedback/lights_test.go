package feedback

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vaora/vaora/scanner/decide"
	"github.com/vaora/vaora/scanner/gate"
)

var (
	oGreenAccepted = gate.Outcome{Result: "accepted", State: decide.Green, Direction: "in"}
	oAmberAccepted = gate.Outcome{Result: "accepted", State: decide.Amber, Direction: "in"}
	oBlueAccepted  = gate.Outcome{Result: "accepted", State: decide.Blue, Direction: "in"}
	oRedRejected   = gate.Outcome{Result: "rejected", State: decide.Red, Direction: "in"}
	oRedFault      = gate.Outcome{Result: "fault", State: decide.Red, Direction: "in"}
	oAmberFault    = gate.Outcome{Result: "fault", State: decide.Amber, Direction: "in"} // storage full, site admits
)

func checkSteps(t *testing.T, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("line changes:\n  got  %q\n  want %q", got, want)
	}
}

func TestLightsSequence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newRecordingLines()
		l, err := NewLights(f, LightsOptions{Relay: "relay"})
		if err != nil {
			t.Fatal(err)
		}
		l.Show(oGreenAccepted)
		time.Sleep(3 * time.Second)
		l.Show(oRedRejected)
		time.Sleep(2500 * time.Millisecond)
		l.Show(oBlueAccepted)
		time.Sleep(time.Second)
		l.Show(gate.Outcome{Result: "direction", Direction: "out"}) // leaves the lights as they are
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		checkSteps(t, f.recorded(), []string{
			"0s amber=0 blue=0 green=0 red=0 relay=0", // at start
			"0s green=1 relay=1",
			"500ms relay=0",
			"2s green=0",
			"3s red=1",
			"5s red=0",
			"5.5s blue=1",
			"6.5s amber=0 blue=0 green=0 red=0 relay=0", // Close
		})
	})
}

func TestLightsRelayOnlyForAllowedAccepted(t *testing.T) {
	for _, tc := range []struct {
		name   string
		states []decide.State
		o      gate.Outcome
		opens  bool
	}{
		{"green accepted", nil, oGreenAccepted, true},
		{"amber accepted, green only", nil, oAmberAccepted, false},
		{"blue accepted, green only", nil, oBlueAccepted, false},
		{"amber accepted, factory", []decide.State{decide.Green, decide.Amber}, oAmberAccepted, true},
		{"red rejected", []decide.State{decide.Green, decide.Amber}, oRedRejected, false},
		{"red fault", []decide.State{decide.Green, decide.Amber}, oRedFault, false},
		{"amber fault (storage full, site admits)", []decide.State{decide.Green, decide.Amber}, oAmberFault, false},
		{"green but rejected", nil, gate.Outcome{Result: "rejected", State: decide.Green}, false},
		{"green but fault", nil, gate.Outcome{Result: "fault", State: decide.Green}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newRecordingLines()
				l, err := NewLights(f, LightsOptions{Relay: "relay", RelayPulse: 800 * time.Millisecond,
					RelayStates: tc.states})
				if err != nil {
					t.Fatal(err)
				}
				l.Show(tc.o)
				time.Sleep(5 * time.Second)
				l.Close()
				var pulses []string
				for _, s := range f.recorded() {
					if strings.Contains(s, "relay=") && !strings.HasSuffix(s, "relay=0") {
						pulses = append(pulses, s)
					}
				}
				switch {
				case tc.opens && !slices.Equal(pulses, []string{"0s " + string(tc.o.State) + "=1 relay=1"}):
					t.Errorf("relay pulses %q; steps %q", pulses, f.recorded())
				case tc.opens && !slices.Contains(f.recorded(), "800ms relay=0"):
					t.Errorf("the pulse did not last 800ms: %q", f.recorded())
				case !tc.opens && len(pulses) > 0:
					t.Errorf("the relay was pulsed: %q", f.recorded())
				}
			})
		})
	}
}

// TestLightsBurst: each code replaces the LEDs at once; a pulse already begun is never cut short, and an accepted
// code during it extends it.
func TestLightsBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newRecordingLines()
		l, err := NewLights(f, LightsOptions{Relay: "relay"})
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		for range 50 { // a burst at one instant: only the last is shown
			l.Show(oRedRejected)
			l.Show(oAmberAccepted)
		}
		time.Sleep(100 * time.Millisecond)
		l.Show(oGreenAccepted) // pulse 100ms..600ms
		time.Sleep(300 * time.Millisecond)
		l.Show(oRedFault) // the pulse goes on
		time.Sleep(100 * time.Millisecond)
		l.Show(oGreenAccepted) // extends it to 1s
		time.Sleep(3 * time.Second)
		l.Close()
		// The worker may catch some of the burst in passing; none opens the gate and the last one stays lit.
		steps := f.recorded()
		state := map[string]string{}
		for len(steps) > 0 && strings.HasPrefix(steps[0], "0s ") {
			for _, kv := range strings.Fields(steps[0])[1:] {
				k, v, _ := strings.Cut(kv, "=")
				state[k] = v
			}
			if strings.Contains(steps[0], "relay=1") {
				t.Errorf("the burst pulsed the relay: %q", steps[0])
			}
			steps = steps[1:]
		}
		if state["amber"] != "1" || state["red"] != "0" {
			t.Errorf("after the burst: %v, want amber lit alone", state)
		}
		checkSteps(t, steps, []string{
			"100ms amber=0 green=1 relay=1",
			"400ms green=0 red=1",
			"500ms green=1 red=0",
			"1s relay=0",
			"2.5s green=0",
			"3.5s amber=0 blue=0 green=0 red=0 relay=0",
		})
	})
}

func TestLightsCloseDuringPulse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newRecordingLines()
		l, err := NewLights(f, LightsOptions{Relay: "door", RelayPulse: 5 * time.Second,
			LEDs: map[decide.State][]string{decide.Green: {"g"}, decide.Amber: {"r", "g"}, decide.Red: {"r"}}})
		if err != nil {
			t.Fatal(err)
		}
		l.Show(oGreenAccepted)
		time.Sleep(time.Second)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l.Show(oGreenAccepted) // after Close: nothing
		l.Close()
		time.Sleep(10 * time.Second)
		checkSteps(t, f.recorded(), []string{
			"0s door=0 g=0 r=0",
			"0s door=1 g=1",
			"1s door=0 g=0 r=0",
		})
	})
}

func TestLightsTwoLinesForAmber(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newRecordingLines()
		l, _ := NewLights(f, LightsOptions{Hold: time.Second,
			LEDs: map[decide.State][]string{decide.Green: {"g"}, decide.Amber: {"r", "g"}, decide.Red: {"r"}}})
		l.Show(oAmberAccepted)
		time.Sleep(500 * time.Millisecond)
		l.Show(oGreenAccepted)
		time.Sleep(2 * time.Second)
		l.Show(oBlueAccepted) // no LED of its own: all off
		time.Sleep(time.Second)
		l.Close()
		checkSteps(t, f.recorded(), []string{
			"0s g=0 r=0",
			"0s g=1 r=1",
			"500ms r=0",
			"1.5s g=0",
			"3.5s g=0 r=0",
		})
	})
}

func TestLightsGPIOErrorLoggedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newRecordingLines()
		var log lockedLog
		l, _ := NewLights(f, LightsOptions{Relay: "relay", Log: log.logger()})
		synctest.Wait()
		f.setFail(errors.New("gpio /dev/gpiochip0: setting lines: input/output error"))
		for range 20 {
			l.Show(oGreenAccepted)
			time.Sleep(time.Second)
		}
		f.setFail(nil)
		l.Show(oRedRejected)
		time.Sleep(time.Second)
		l.Close()
		out := log.String()
		if n := strings.Count(out, "setting GPIO lines failed"); n != 1 {
			t.Errorf("%d error lines, want 1:\n%s", n, out)
		}
		if n := strings.Count(out, "GPIO lines work again"); n != 1 {
			t.Errorf("%d recovery lines, want 1:\n%s", n, out)
		}
		// A line whose Set failed is not assumed to hold anything: green is set off again, though it was last
		// asked to be off.
		checkSteps(t, f.recorded()[1:], []string{
			"20s green=0 red=1",
			"21s amber=0 blue=0 green=0 red=0 relay=0",
		})
	})
}

func TestLightsOptionsRefused(t *testing.T) {
	for _, o := range []LightsOptions{
		{Relay: "relay", RelayStates: []decide.State{decide.Green, decide.Red}},
		{Relay: "green"},
		{Hold: -time.Second},
		{LEDs: map[decide.State][]string{decide.Green: {""}}},
	} {
		if l, err := NewLights(newRecordingLines(), o); err == nil {
			l.Close()
			t.Errorf("NewLights(%+v) accepted", o)
		}
	}
}
