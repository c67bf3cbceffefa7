"""Host-side harness: device inventory, runner, result store and reports."""
