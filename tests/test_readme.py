"""The README's two commands stay what CI runs and what a new user types."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands():
    text = (ROOT / "README.md").read_text()
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_readme_opens_with_two_commands():
    commands = readme_commands()
    assert len(commands) == 2
    main_job, tests = commands
    assert "selboost bench" in main_job
    assert "pytest" in tests
    for command in commands:
        assert command.startswith("python3 -m venv .venv && ")


def test_ci_runs_the_readme_test_command_verbatim():
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert readme_commands()[1] in ci_lines


def test_console_script_is_declared():
    assert 'selboost = "selboost.cli:main"' in (ROOT / "pyproject.toml").read_text()
