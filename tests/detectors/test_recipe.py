import runpy
import sys
from pathlib import Path

RECIPE = Path(__file__).parents[2] / 'recipes' / 'detector_mean_image.py'


def test_detector_mean_image_recipe(tmp_path, monkeypatch, capsys):
    out = tmp_path / 'module2.png'
    monkeypatch.setattr(sys, 'argv', [str(RECIPE), '--out', str(out), '--module', '2',
                                      '--trains', '3'])
    runpy.run_path(str(RECIPE), run_name='__main__')
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert 'mean image (16, 128, 64)' in capsys.readouterr().out
    assert not list(tmp_path.glob('*.tmp.png'))
