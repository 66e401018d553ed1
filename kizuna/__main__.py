from kizuna.cli import run

run()
