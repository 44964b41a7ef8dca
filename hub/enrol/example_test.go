package enrol

import (
	"encoding/json"
	"flag"
	"os"
	"reflect"
	"testing"

	"github.com/vaora/vaora/sync/wire"
)

var update = flag.Bool("update", false, "rewrite configs/mosquitto-dynsec-device-role.example.json")

// exampleRole is what the hub sends Mosquitto's dynamic security plugin for a device gate-1 at site lobby.
func exampleRole() map[string]any {
	return map[string]any{
		"commands": []map[string]any{
			{"command": "createRole", "rolename": RoleName("gate-1"), "textdescription": "vaora device gate-1 at site lobby",
				"acls": DeviceACL(wire.Topics{Root: "vaora/v1"}, "gate-1", "lobby")},
			{"command": "createClient", "username": "gate-1", "password": "(random, made at enrolment)",
				"textdescription": "vaora device", "roles": []map[string]any{{"rolename": RoleName("gate-1")}}},
		},
	}
}

// TestDeviceRoleExample keeps the documented device ACL the same as the one the hub creates.
func TestDeviceRoleExample(t *testing.T) {
	const path = "../../configs/mosquitto-dynsec-device-role.example.json"
	want, _ := json.MarshalIndent(exampleRole(), "", "  ")
	if *update {
		os.WriteFile(path, append(want, '\n'), 0o644)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got, w any
	json.Unmarshal(b, &got)
	json.Unmarshal(want, &w)
	if !reflect.DeepEqual(got, w) {
		t.Fatalf("%s differs from what the hub sends (go test ./hub/enrol -run TestDeviceRoleExample -update):\n%s", path, want)
	}
}
