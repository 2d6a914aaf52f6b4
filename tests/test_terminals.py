"""Terminals: the exact launch each terminal gets, detection, and quoting that survives hostile input.

The builders are pure, so most tests compare exact argv / AppleScript / command lines. Where a
real interpreter is at hand (sh, bash, zsh, fish) the quoted text is run for real and must give
back exactly what went in.
"""

import base64
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tempo

HOSTILE = [
    "plain",
    "two words",
    "it's",
    'say "hi"',
    "$HOME and ${PATH}",
    "`id` and $(id)",
    "back\\slash \\' \\\\ end\\",
    "line one\nline two",
    "ünïcödé ✓ 日本語 🎵",
    "tab\there; & | > < * ? ~ # !",
    "-starts-with-dash",
    "",
]
SHELLS = [s for s in ("sh", "bash", "zsh", "fish") if shutil.which(s)]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("text", HOSTILE)
def test_shell_word_reads_back_unchanged_in_every_shell(shell, text):
    word = tempo.shell_word(text)
    printed = subprocess.run([shell, "-c", f"printf '%s' {word}"], capture_output=True, check=True).stdout
    assert printed.decode() == text


@pytest.mark.parametrize(
    "text, word",
    [
        ("plain", "plain"),
        ("/tmp/a-b_c.sh", "/tmp/a-b_c.sh"),
        ("two words", "'two words'"),
        ("it's", "'it'\"'\"'s'"),
        ("a\\b", "'a'\"\\\\\"'b'"),
        ("$x `y`", "'$x `y`'"),
        ("", "''"),
    ],
)
def test_shell_word_exact(text, word):
    assert tempo.shell_word(text) == word


def recorder(directory: Path) -> Path:
    """A stand-in program that writes its argv, cwd and environment as JSON to $RECORD."""
    path = directory / "record-me"
    path.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "json.dump({'argv': sys.argv[1:], 'cwd': os.getcwd(), 'env': dict(os.environ)},\n"
        "          open(os.environ['RECORD'], 'w'))\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_launch_script_runs_the_exact_argv_in_the_exact_directory(tmp_path):
    cwd = tmp_path / "it's a $dir `x` ü"
    cwd.mkdir()
    program = recorder(tmp_path)
    args = [a for a in HOSTILE if a]
    env = {"CLAUDE_TEMPO_ENSEMBLE": "e1", "TEMPORAL_API_KEY": "k'$`\\\n", "RECORD": str(tmp_path / "rec.json")}
    script = tmp_path / "launch.sh"
    script.write_text(tempo._launch_script([str(program), *args], env, str(cwd)))
    inherited = {**os.environ, "CLAUDE_TEMPO_PLAYER_NAME": "parent", "CLAUDE_TEMPO_CONDUCTOR": "true",
                 "CLAUDECODE": "1", "CLAUDE_CODE_SESSION_ID": "the-recruiters-session"}
    subprocess.run(["/bin/sh", str(script)], env=inherited, check=True, timeout=30)
    record = json.loads((tmp_path / "rec.json").read_text())
    assert record["argv"] == args
    assert record["cwd"] == str(cwd)
    assert record["env"]["TEMPORAL_API_KEY"] == "k'$`\\\n"
    assert "CLAUDE_TEMPO_PLAYER_NAME" not in record["env"]  # never the parent's identity
    assert "CLAUDE_TEMPO_CONDUCTOR" not in record["env"]
    assert "CLAUDECODE" not in record["env"] and "CLAUDE_CODE_SESSION_ID" not in record["env"]  # a session of its own
    assert not script.exists()  # it removed itself (it may hold an API key)


def test_launch_script_refuses_a_bad_variable_name():
    with pytest.raises(tempo.TempoError, match="invalid environment variable name"):
        tempo._launch_script(["claude"], {"A; rm -rf /": "x"}, "/tmp")


ARGV = ["claude", "--dangerously-load-development-channels", "server:claude-tempo", "--", "You are x"]
ENV = {"CLAUDE_TEMPO_ENSEMBLE": "e1", "CLAUDE_TEMPO_PLAYER_NAME": "x"}
SCRIPT = "/tmp/tempo-launch-1.sh"
CWD = "/home/me/my project"
LOGIN = ["/usr/bin/fish", "-l", "-i", "-c", f"/bin/sh {SCRIPT}"]
IN_TMUX = f"/usr/bin/fish -l -i -c '/bin/sh {SCRIPT}'"  # tmux hands its one argument to `$SHELL -c`


@pytest.mark.parametrize(
    "terminal, options, expected",
    [
        ("tmux", {"inside_tmux": True},
         ["tmux", "new-window", "-d", "-P", "-F", "#{pane_id}", "-n", "tempo x", "-c", CWD, IN_TMUX]),
        ("tmux", {"tmux_session": "tempo-e1"},
         ["tmux", "new-session", "-d", "-P", "-F", "#{pane_id}", "-s", "tempo-e1", "-n", "tempo x", "-c", CWD, IN_TMUX]),
        ("tmux", {"tmux_session": "tempo-e1", "tmux_session_exists": True},
         ["tmux", "new-window", "-d", "-P", "-F", "#{pane_id}", "-t", "tempo-e1:", "-n", "tempo x", "-c", CWD, IN_TMUX]),
        ("ghostty", {"platform": "darwin"},
         ["open", "-na", "Ghostty", "--args", f"--working-directory={CWD}", "--title=tempo x", "-e", *LOGIN]),
        ("ghostty", {"platform": "linux"},
         ["ghostty", f"--working-directory={CWD}", "--title=tempo x", "-e", *LOGIN]),
        ("iterm", {},
         ["osascript", "-e", 'tell application "iTerm"', "-e", "activate",
          "-e", "set newWindow to (create window with default profile)",
          "-e", "tell current session of newWindow", "-e", f'write text "/bin/sh {SCRIPT}"',
          "-e", "end tell", "-e", "end tell"]),
        ("terminal", {},
         ["osascript", "-e", 'tell application "Terminal"', "-e", "activate",
          "-e", f'set newTab to do script "/bin/sh {SCRIPT}"', "-e", 'set custom title of newTab to "tempo x"',
          "-e", "end tell"]),
        ("gnome-terminal", {}, ["gnome-terminal", f"--working-directory={CWD}", "--", *LOGIN]),
        ("konsole", {}, ["konsole", "--workdir", CWD, "-p", "tabtitle=tempo x", "-e", *LOGIN]),
        ("xterm", {}, ["xterm", "-T", "tempo x", "-e", *LOGIN]),
    ],
)
def test_posix_launch_exact_argv(terminal, options, expected):
    launch = tempo._build_launch(terminal, ARGV, ENV, CWD, "tempo x", script=SCRIPT, shell="/usr/bin/fish", **options)
    assert launch.argv == expected
    assert launch.terminal == terminal


def test_detached_tmux_says_how_to_attach():
    launch = tempo._build_launch("tmux", ARGV, ENV, CWD, "tempo x", script=SCRIPT, tmux_session="tempo-e1")
    assert "tmux attach -t tempo-e1" in launch.note


def test_hostile_script_path_in_applescript_and_login_shell():
    script = '/tmp/it\'s "a" \\ $dir/ü.sh'
    run = "/bin/sh '/tmp/it'\"'\"'s \"a\" '\"\\\\\"' $dir/ü.sh'"
    assert f"/bin/sh {tempo.shell_word(script)}" == run
    launch = tempo._build_launch("terminal", ARGV, ENV, CWD, "tempo x", script=script)
    as_literal = '"' + run.replace("\\", "\\\\").replace('"', '\\"') + '"'
    assert launch.argv[6] == f"set newTab to do script {as_literal}"
    launch = tempo._build_launch("xterm", ARGV, ENV, CWD, "tempo x", script=script, shell="/bin/bash")
    assert launch.argv[-5:] == ["/bin/bash", "-l", "-i", "-c", run]


def test_titles_lose_characters_a_terminal_could_misread():
    launch = tempo._build_launch("cmd", ARGV, ENV, CWD, 'tempo "x" & del *')
    assert launch.argv.startswith('cmd.exe /c start "tempo x  del " powershell.exe')


WINDOWS_CWD = "C:\\Users\\Zoë O'Brien\\my ‘project’"
WINDOWS_ARGV = ["claude", "--dangerously-load-development-channels", "server:claude-tempo",
                'say "hi" to C:\\dir\\ with $env:X `n and ’curly’']
WINDOWS_ENV = {"CLAUDE_TEMPO_ENSEMBLE": "e1", "TEMPORAL_API_KEY": "k'ey"}
POWERSHELL_SCRIPT = (
    "$Host.UI.RawUI.WindowTitle = 'tempo x'\n"
    "Set-Location -LiteralPath 'C:\\Users\\Zoë O''Brien\\my ‘‘project’’'\n"
    "Remove-Item Env:CLAUDE_TEMPO_PLAYER_NAME, Env:CLAUDE_TEMPO_CONDUCTOR, Env:CLAUDECODE, Env:CLAUDE_CODE_SESSION_ID, "
    "Env:CLAUDE_CODE_ENTRYPOINT, Env:CLAUDE_PROJECT_DIR -ErrorAction SilentlyContinue\n"
    "$env:CLAUDE_TEMPO_ENSEMBLE = 'e1'\n"
    "$env:TEMPORAL_API_KEY = 'k''ey'\n"
    "$PSNativeCommandArgumentPassing = 'Legacy'\n"
    "& 'claude' '--dangerously-load-development-channels' 'server:claude-tempo' "
    "'say \\\"hi\\\" to C:\\dir\\ with $env:X `n and ’’curly’’'\n"
)


def test_powershell_script_exact():
    assert tempo._powershell_script(WINDOWS_ARGV, WINDOWS_ENV, WINDOWS_CWD, "tempo x") == POWERSHELL_SCRIPT


@pytest.mark.parametrize(
    "terminal, prefix",
    [
        ("cmd", 'cmd.exe /c start "tempo x" powershell.exe -NoLogo -NoExit -EncodedCommand '),
        ("powershell", "powershell.exe -NoProfile -Command Start-Process powershell.exe -ArgumentList "
                       "'-NoLogo','-NoExit','-EncodedCommand','"),
    ],
)
def test_windows_launch_carries_everything_encoded(terminal, prefix):
    launch = tempo._build_launch(terminal, WINDOWS_ARGV, WINDOWS_ENV, WINDOWS_CWD, "tempo x")
    assert isinstance(launch.argv, str) and launch.argv.startswith(prefix)
    encoded = launch.argv[len(prefix):].rstrip("'")
    assert set(encoded) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
    assert base64.b64decode(encoded).decode("utf-16-le") == POWERSHELL_SCRIPT


@pytest.mark.parametrize(
    "arg, escaped",
    [
        ("plain", "plain"),
        ('a "b"', 'a \\"b\\"'),
        ('x\\"y', 'x\\\\\\"y'),
        ("C:\\dir\\", "C:\\dir\\"),  # no whitespace: PowerShell does not quote it
        ("C:\\my dir\\", "C:\\my dir\\\\"),  # quoted by PowerShell: the last backslash must not eat the quote
    ],
)
def test_windows_arg(arg, escaped):
    assert tempo._windows_arg(arg) == escaped


def which_of(*present):
    return lambda name: f"/usr/bin/{name}" if name in present else None


@pytest.mark.parametrize(
    "env, platform, present, expected",
    [
        ({"CLAUDE_TEMPO_TERMINAL": "iTerm2"}, "linux", (), "iterm"),
        ({"CLAUDE_TEMPO_TERMINAL": "manual", "TMUX": "/tmp/x"}, "linux", ("tmux",), "manual"),
        ({"TMUX": "/tmp/tmux-1/default,1,0", "TERM_PROGRAM": "iTerm.app"}, "darwin", (), "tmux"),
        ({"TERM_PROGRAM": "ghostty"}, "darwin", (), "ghostty"),
        ({"TERM_PROGRAM": "iTerm.app"}, "darwin", (), "iterm"),
        ({"TERM_PROGRAM": "Apple_Terminal"}, "darwin", (), "terminal"),
        ({"TERM_PROGRAM": "vscode"}, "darwin", (), "terminal"),
        ({}, "win32", (), "cmd"),
        ({"DISPLAY": ":0"}, "linux", ("gnome-terminal", "konsole", "xterm", "tmux"), "gnome-terminal"),
        ({"DISPLAY": ":0", "KONSOLE_VERSION": "230401"}, "linux", ("gnome-terminal", "konsole"), "konsole"),
        ({"WAYLAND_DISPLAY": "wayland-0", "TERM_PROGRAM": "ghostty"}, "linux", ("ghostty", "xterm"), "ghostty"),
        ({"DISPLAY": ":0"}, "linux", ("xterm",), "xterm"),
        ({"DISPLAY": ":0"}, "linux", ("tmux",), "tmux"),
        ({}, "linux", ("gnome-terminal", "xterm", "tmux"), "tmux"),  # headless: no display
        ({}, "linux", (), None),
    ],
)
def test_detect_terminal(env, platform, present, expected):
    assert tempo.detect_terminal(env, platform, which_of(*present)) == expected


def test_unknown_terminal_override_is_an_error():
    with pytest.raises(tempo.TempoError, match="CLAUDE_TEMPO_TERMINAL='hyper' is not a terminal tempo knows"):
        tempo.detect_terminal({"CLAUDE_TEMPO_TERMINAL": "hyper"}, "linux", which_of())


def test_manual_command_exact_and_runnable(tmp_path):
    cwd = tmp_path / "a dir with 'quotes'"
    cwd.mkdir()
    program = recorder(tmp_path)
    env = {"RECORD": str(tmp_path / "rec.json"), "TEMPORAL_API_KEY": "s3cret"}
    line = tempo.manual_command([str(program), "it's $HOME `id`"], env, str(cwd), platform="linux")
    assert line == (f"cd {tempo.shell_word(str(cwd))} && RECORD={tempo.shell_word(env['RECORD'])} "
                    f"TEMPORAL_API_KEY='<your API key>' {program} 'it'\"'\"'s $HOME `id`'")
    assert "s3cret" not in line
    subprocess.run(["bash", "-c", line], check=True, timeout=30)
    record = json.loads((tmp_path / "rec.json").read_text())
    assert record["argv"] == ["it's $HOME `id`"] and record["cwd"] == str(cwd)


def test_manual_command_on_windows_is_powershell():
    line = tempo.manual_command(["claude", "it's"], {"A": "b"}, "C:\\x y", platform="win32")
    assert line == "Set-Location -LiteralPath 'C:\\x y'; $env:A = 'b'; & 'claude' 'it''s'"


def test_no_terminal_error_gives_the_command_to_type(monkeypatch, tmp_path):
    monkeypatch.setenv("CLAUDE_TEMPO_TERMINAL", "manual")
    with pytest.raises(tempo.TempoError) as e:
        tempo.open_terminal(["claude", "hello there"], {"CLAUDE_TEMPO_ENSEMBLE": "e1"}, str(tmp_path), "tempo x")
    assert "found no terminal" in str(e.value)
    assert f"cd {tempo.shell_word(str(tmp_path))} && CLAUDE_TEMPO_ENSEMBLE=e1 claude 'hello there'" in str(e.value)


def test_recruited_prompt_names_the_session_and_set_name():
    text = tempo._first_prompt("reviewer-2", "e1", "conductor", task_follows=True)
    assert 'set_name with name "reviewer-2"' in text and "ensemble e1" in text and "cue from conductor" in text


def test_a_tmux_window_confirms_the_dev_channels_dialog(tmp_path):
    """Claude Code asks to confirm development channels at every launch: tempo answers for it."""
    fake = tmp_path / "claude"
    got = tmp_path / "answer.txt"
    fake.write_text(
        "#!/bin/sh\n"
        "printf 'WARNING: Loading development channels\\n> 1. I am using this for local development\\n  2. Exit\\n'\n"
        f"read -r answer; echo \"confirmed:$answer\" > {got}\n"
    )
    fake.chmod(0o755)
    script = tmp_path / "launch.sh"
    script.write_text(tempo._launch_script([str(fake), *tempo.CHANNELS_FLAG], {}, str(tmp_path)))
    socket_name = f"tempo-test-{os.getpid()}"
    tmux = ["tmux", "-L", socket_name]
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    subprocess.run([*tmux, "new-session", "-d", "-s", "t", f"/bin/sh {script}"], env=env, check=True, timeout=30)
    try:
        deadline = time.monotonic() + 20
        while not got.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert got.read_text().strip() == "confirmed:"
    finally:
        subprocess.run([*tmux, "kill-server"], env=env, timeout=30)
