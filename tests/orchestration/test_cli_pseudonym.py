"""`segwh erase --email` passes only the address's keyed hash to the run; `segwh pseudonym`
prints that hash for the erase_person job's launchpad."""

import os
import subprocess
import sys
from pathlib import Path

from privacy.pseudonyms import key_from_environment, pseudonym

SEGWH = str(Path(sys.executable).parent / "segwh")


def test_the_email_hash_is_the_pseudonym_of_the_normalized_address_read_from_stdin():
    printed = subprocess.run(
        [SEGWH, "pseudonym", "--email", "-"],
        input="  Ann.Lee@Example.COM \n",
        capture_output=True,
        text=True,
        check=True,
        env=os.environ,
    ).stdout.strip()
    assert printed == pseudonym("ann.lee@example.com", key_from_environment())
    assert "ann.lee" not in printed.lower()
