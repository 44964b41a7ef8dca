package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/vaora/vaora/configs"
	"github.com/vaora/vaora/scanner/decide"
	"github.com/vaora/vaora/scanner/feedback"
)

// closer is an output to release at the end, in the reverse order of opening.
type closer interface{ Close() error }

// openOutputs opens the configured tone, LEDs, relay, buzzer and webhook. A GPIO chip or a webhook secret that
// cannot be opened is a usage error (exit 2): restarting does not fix the config or the wiring.
func openOutputs(o configs.Outputs, device string, log *slog.Logger) (feedbacks, []closer, error) {
	var fbs feedbacks
	var closers []closer
	fail := func(err error) (feedbacks, []closer, error) {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i].Close()
		}
		return nil, nil, usageError{err}
	}
	if o.Sound != "" {
		s := feedback.NewSound(feedback.SoundOptions{Device: o.Sound, Log: log.With("output", "sound")})
		fbs, closers = append(fbs, s), append(closers, s)
	}
	if lines := o.Lines(); len(lines) > 0 {
		chip, err := feedback.OpenGPIO(o.GPIOChip, lines, feedback.WithActiveLow(o.ActiveLow...))
		if err != nil {
			return fail(fmt.Errorf("outputs.gpio_chip: %w", err))
		}
		closers = append(closers, chip)
		leds := map[decide.State][]string{}
		for _, st := range []decide.State{decide.Green, decide.Amber, decide.Blue, decide.Red} {
			if _, ok := lines[string(st)]; ok {
				leds[st] = []string{string(st)}
			}
		}
		_, relay := lines["relay"]
		if len(leds) > 0 || relay {
			opts := feedback.LightsOptions{LEDs: leds, RelayPulse: o.RelayPulse, Log: log.With("output", "lights")}
			if relay {
				opts.Relay = "relay"
				for _, s := range o.RelayStates {
					opts.RelayStates = append(opts.RelayStates, decide.State(s))
				}
			}
			l, err := feedback.NewLights(chip, opts)
			if err != nil {
				return fail(fmt.Errorf("outputs: %w", err))
			}
			fbs, closers = append(fbs, l), append(closers, l)
		}
		if _, ok := lines["buzzer"]; ok {
			b, err := feedback.NewBuzzer(chip, feedback.BuzzerOptions{Line: "buzzer", Log: log.With("output", "buzzer")})
			if err != nil {
				return fail(fmt.Errorf("outputs.buzzer: %w", err))
			}
			fbs, closers = append(fbs, b), append(closers, b)
		}
	}
	if o.Webhook != "" {
		var secret string
		if o.WebhookSecretFile != "" {
			b, err := os.ReadFile(o.WebhookSecretFile)
			if err != nil {
				return fail(fmt.Errorf("outputs.webhook_secret_file: %w", err))
			}
			if secret = strings.TrimSpace(string(b)); secret == "" {
				return fail(errors.New("outputs.webhook_secret_file: " + o.WebhookSecretFile + " is empty: write the shared secret in it"))
			}
		}
		w, err := feedback.NewWebhook(feedback.WebhookOptions{URL: o.Webhook, Device: device, Secret: secret,
			Log: log.With("output", "webhook")})
		if err != nil {
			return fail(fmt.Errorf("outputs.webhook: %w", err))
		}
		fbs, closers = append(fbs, w), append(closers, w)
	}
	return fbs, closers, nil
}
