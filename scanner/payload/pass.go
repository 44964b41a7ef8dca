package payload

import "time"

// vaora signed pass, FORMATS.md section 4: "VR" + version + ":" + base45 body
// signed with Ed25519. Recognised by its prefix, not verified yet.
// parseVaoraPass is the seam: verifying needs the issuer public keys from the
// device config, which must reach it as data since the package does no I/O.

func looksVaoraPass(text string) bool {
	if len(text) < 4 || text[0] != 'V' || text[1] != 'R' {
		return false
	}
	i := 2
	for i < len(text) && i < 6 && '0' <= text[i] && text[i] <= '9' {
		i++
	}
	return i > 2 && i < len(text) && text[i] == ':'
}

func parseVaoraPass(r *Result, _ string, _ time.Time) {
	r.Kind = KindVaoraPass
	r.addMsg(CodeUnsupported, "vaora pass recognised, but this device cannot verify passes yet: update the device, or "+askForCode+".")
}
