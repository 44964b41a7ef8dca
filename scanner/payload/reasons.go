package payload

import "strings"

// Reason codes. They are stable: logs, the database and dashboards key on them.
// docs/reason-codes.md lists each with its severity and meaning, and a test
// keeps the two in step. Messages never quote the code's content.
const (
	// Not a personal code at all.
	CodeEmpty            = "empty"
	CodeTooLong          = "too_long"
	CodeInvalidUTF8      = "invalid_utf8"
	CodeControlCharacter = "control_character"
	CodeURL              = "url"
	CodeVenueCheckinURL  = "venue_checkin_url"
	CodeNotPersonalCode  = "not_personal_code"
	CodeUnsupported      = "unsupported_format"
	CodeFieldCount       = "field_count"

	// Field errors in a CCCD, COVID-app or BHYT code.
	CodeIDInvalid            = "id_invalid"
	CodeIDBirthMismatch      = "id_birth_mismatch"
	CodeIDGenderMismatch     = "id_gender_mismatch"
	CodeBirthDateInvalid     = "birth_date_invalid"
	CodeBirthDateFuture      = "birth_date_future"
	CodeIssueDateInvalid     = "issue_date_invalid"
	CodeIssueDateFuture      = "issue_date_future"
	CodeIssueDateBeforeBirth = "issue_date_before_birth"
	CodeQIDMissing           = "qid_missing"
	CodeQIDInvalid           = "qid_invalid"
	CodeHexInvalid           = "hex_invalid"

	// A vaora pass that does not verify or is out of date.
	CodePassEncoding         = "pass_encoding_invalid"
	CodePassMalformed        = "pass_malformed"
	CodePassKeyUnknown       = "pass_key_unknown"
	CodePassSignatureInvalid = "pass_signature_invalid"
	CodePassExpired          = "pass_expired"
	CodePassNotYetValid      = "pass_not_yet_valid"
	CodePassStatusUnknown    = "pass_status_unknown"

	// Warnings: the code stays valid.
	CodeResharedCopy           = "reshared_copy"
	CodeReaderKeyboardMode     = "reader_keyboard_mode"
	CodeReaderEncoding         = "reader_encoding"
	CodeNameMissing            = "name_missing"
	CodeAddressMissing         = "address_missing"
	CodeGenderUnknown          = "gender_unknown"
	CodeOldIDInvalid           = "old_id_invalid"
	CodeIDProvinceUnknown      = "id_province_unknown"
	CodeIDMissing              = "id_missing"
	CodeDeclarationTypeUnknown = "declaration_type_unknown"
	CodeProxyQIDInvalid        = "proxy_qid_invalid"
	CodePhoneInvalid           = "phone_invalid"
)

// askForCode ends the messages that reject a code: what the guard asks for instead.
const askForCode = "ask for the CCCD card or the personal QR in the app"

type reasonDef struct {
	code     string
	severity Severity
	message  string // default; a parser may say more precisely what it recognised
}

var reasonTable = []reasonDef{
	{CodeEmpty, SeverityError, "Empty code: scan again."},
	{CodeTooLong, SeverityError, "Too long for a personal code (over 4096 bytes): " + askForCode + "."},
	{CodeInvalidUTF8, SeverityError, "Reader is not in UTF-8 mode: set the reader to UTF-8 output, then scan again."},
	{CodeControlCharacter, SeverityError, "Code contains control characters (two codes in one read?): scan again."},
	{CodeURL, SeverityError, "A web address (URL), not a personal code: " + askForCode + "."},
	{CodeVenueCheckinURL, SeverityError, "An old tokhaiyte.vn venue check-in link, not a personal code: " + askForCode + "."},
	{CodeNotPersonalCode, SeverityError, "Not a personal code: " + askForCode + "."},
	{CodeUnsupported, SeverityError, "Format recognised but not supported by this device: update the device, or " + askForCode + "."},
	{CodeFieldCount, SeverityError, "Wrong number of |-separated fields: scan again; if it repeats, the code is damaged."},

	{CodeIDInvalid, SeverityError, "Card number is not 12 digits: the code is damaged or altered; check the card."},
	{CodeIDBirthMismatch, SeverityError, "Card number does not match the birth year: the code is damaged or altered; check the card."},
	{CodeIDGenderMismatch, SeverityError, "Card number does not match the sex: the code is damaged or altered; check the card."},
	{CodeBirthDateInvalid, SeverityError, "Birth date is missing or not a real date: the code is damaged or altered; check the card."},
	{CodeBirthDateFuture, SeverityError, "Birth date is in the future: check the card, and the device clock."},
	{CodeIssueDateInvalid, SeverityError, "Issue date is missing or not a real date: the code is damaged or altered; check the card."},
	{CodeIssueDateFuture, SeverityError, "Issue date is in the future: check the card, and the device clock."},
	{CodeIssueDateBeforeBirth, SeverityError, "Issue date is before the birth date: the code is damaged or altered; check the card."},
	{CodeQIDMissing, SeverityError, "App QR has no QID: ask the person to open the personal QR in the app again."},
	{CodeQIDInvalid, SeverityError, "App QR's QID is not a number: the code is damaged or altered; ask the person to open the QR again."},
	{CodeHexInvalid, SeverityError, "A hex-encoded field does not decode to UTF-8 text: the code is damaged or altered; check the card."},

	{CodePassEncoding, SeverityError, "Pass text is damaged (not base45): scan again; if it repeats, print the pass again."},
	{CodePassMalformed, SeverityError, "Pass is damaged or cut off: scan again; if it repeats, print the pass again."},
	{CodePassKeyUnknown, SeverityError, "Pass signed by an issuer key this device does not know: add the issuer's public key to the device config, or " + askForCode + "."},
	{CodePassSignatureInvalid, SeverityError, "Pass signature does not verify: the pass is altered or forged; " + askForCode + "."},
	{CodePassExpired, SeverityError, "Pass has expired: ask the issuer for a new one, or " + askForCode + "."},
	{CodePassNotYetValid, SeverityError, "Pass is issued in the future: check the device clock (and the hub's)."},
	{CodePassStatusUnknown, SeverityError, "Pass carries a declaration status this device does not know: update the device."},

	{CodeResharedCopy, SeverityWarning, "Re-shared copy (chat-app text layout), not the card's own code: check the card if identity matters."},
	{CodeReaderKeyboardMode, SeverityWarning, "Letters with diacritics were lost: the reader types in keyboard mode; switch it to serial (USB-COM) mode."},
	{CodeReaderEncoding, SeverityWarning, "Name or address is garbled (UTF-8 decoded as another code page): set the reader to UTF-8 output."},
	{CodeNameMissing, SeverityWarning, "No name in the code: check the card."},
	{CodeAddressMissing, SeverityWarning, "No address in the code: province unknown."},
	{CodeGenderUnknown, SeverityWarning, "Sex is not one of the known values: kept as read; check the card."},
	{CodeOldIDInvalid, SeverityWarning, "Old ID number (CMND) is not 9 or 12 digits: kept as read."},
	{CodeIDProvinceUnknown, SeverityWarning, "Card number starts with an unknown province code: check the card."},
	{CodeIDMissing, SeverityWarning, "App QR has no ID number: identity rests on the QID alone."},
	{CodeDeclarationTypeUnknown, SeverityWarning, "App QR has an unknown declaration type (expected 0 or 1): kept as read."},
	{CodeProxyQIDInvalid, SeverityWarning, "App QR's proxy declarer QID is not a number: kept as read."},
	{CodePhoneInvalid, SeverityWarning, "App QR's phone number is malformed: kept as read."},
}

// Reasons the later stages of the gate give (decide, record). They live here so that one vocabulary, one doc and
// one test hold every code a guard or an operator can see.
const (
	CodeIdentityClaimed     = "identity_claimed"
	CodeStorageFault        = "storage_fault"
	CodeStorageFull         = "storage_full"
	CodeStorageFullAdmitted = "storage_full_admitted"
	CodeStopListed          = "stop_listed"
	CodeStopListStale       = "stop_list_stale"
	CodeStopListMissing     = "stop_list_missing"
	CodeDuplicateIn         = "duplicate_in"
	CodeDuplicateOut        = "duplicate_out"
	CodeExitWithoutEntry    = "exit_without_entry"
)

var gateReasonTable = []reasonDef{
	{CodeIdentityClaimed, SeverityWarning, "Identity claimed, not verified (an unsigned code): compare the name with the person or their card."},
	{CodeStorageFault, SeverityError, "This scan could not be saved and is not admitted: call the administrator."},
	{CodeStorageFull, SeverityError, "Storage full: this scan is not recorded and not admitted; the device cannot reach the hub, call the administrator."},
	{CodeStorageFullAdmitted, SeverityWarning, "Storage full: this scan is NOT recorded, admitted by the site's policy; call the administrator."},
	// {} is filled in by GateReasonf: the list's reason code, a time of day, an age. Never personal data.
	{CodeStopListed, SeverityError, "On the site's stop list ({}): do not admit; the scan is recorded; call the supervisor."},
	{CodeStopListStale, SeverityWarning, "The stop list is out of date ({} old): the device has not heard from the hub; check its connection."},
	{CodeStopListMissing, SeverityWarning, "No stop list received yet: the person cannot be checked against it; check the device's connection to the hub."},
	{CodeDuplicateIn, SeverityWarning, "Already in since {}: scanned again, recorded again."},
	{CodeDuplicateOut, SeverityWarning, "Already out since {}: scanned again, recorded again."},
	{CodeExitWithoutEntry, SeverityWarning, "Exit without an entry: this person was not scanned in at this reader; check how they came in."},
}

// GateReason returns the reason a later stage of the gate gives, by its code (CodeIdentityClaimed, CodeStorageFault).
func GateReason(code string) Reason { return GateReasonf(code, "") }

// GateReasonf is GateReason with the message's {} filled in by value (a reason code, a time of day, an age: never
// personal data).
func GateReasonf(code, value string) Reason {
	for _, d := range gateReasonTable {
		if d.code == code {
			return Reason{Code: d.code, Severity: d.severity, Message: strings.Replace(d.message, "{}", value, 1)}
		}
	}
	panic("payload: unknown gate reason " + code) // a bug, caught by the tests
}

var reasonIndex = func() map[string]reasonDef {
	m := make(map[string]reasonDef, len(reasonTable))
	for _, d := range reasonTable {
		m[d.code] = d
	}
	return m
}()

// add records a reason with its default message.
func (r *Result) add(code string) { r.addMsg(code, "") }

// addMsg records a reason; msg "" means the default message. A code is
// recorded once: the first, most specific message wins.
func (r *Result) addMsg(code, msg string) {
	d, ok := reasonIndex[code]
	if !ok {
		panic("payload: reason code not in reasonTable: " + code) // a bug, caught by the tests
	}
	for _, x := range r.Reasons {
		if x.Code == code {
			return
		}
	}
	if msg == "" {
		msg = d.message
	}
	r.Reasons = append(r.Reasons, Reason{Code: code, Severity: d.severity, Message: msg})
}
