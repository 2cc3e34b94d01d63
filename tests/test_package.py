import subprocess
import sys

import pytest


def test_import_is_lazy():
    code = (
        "import sys, course_utils; "
        "heavy = [m for m in ('torch', 'transformers', 'matplotlib', 'datasets', 'sklearn') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_submodule_loads_on_access():
    import course_utils

    assert course_utils.similarity.cos_sim is not None


def test_unknown_attribute_raises():
    import course_utils

    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        _ = course_utils.nope
