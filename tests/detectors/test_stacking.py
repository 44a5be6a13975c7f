import numpy as np
import pytest

from exfel_data.detectors import FillValueError, ModuleMismatchError, stack_detector_data
from exfel_data.detectors.stacking import ModuleStack

AGIPD = 'SPB_DET_AGIPD1M-1/DET/{}CH0:xtdf'
AGIPD_CORR = 'SPB_DET_AGIPD1M-1/CORR/{}CH0:output'


def _train(modules, shape=(4, 8, 6), dtype=np.float32, name=AGIPD, key='image.data',
           extra=True):
    data = {}
    for m in modules:
        src = name.format(m)
        data[src] = {
            key: np.full(shape, m, dtype=dtype),
            'metadata': {'source': src, 'timestamp.tid': 10000},
        }
    if extra:  # other devices share the train dict
        data['SA1_XTD2_XGM/XGM/DOOCS:output'] = {
            'data.intensityTD': np.ones(1000, np.float32),
            'metadata': {'source': 'SA1_XTD2_XGM/XGM/DOOCS:output', 'timestamp.tid': 10000},
        }
        data['SPB_IRU_MOTOR/MDL/M1'] = {'actualPosition.value': 1.0, 'metadata': {}}
    return data


def test_full_corrected_stack():
    out = stack_detector_data(_train(range(16)), 'image.data')
    assert out.shape == (4, 16, 8, 6)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[0, :, 0, 0], np.arange(16))


def test_raw_keeps_gain_axis():
    data = _train(range(16), shape=(4, 2, 8, 6), dtype=np.uint16)
    out = stack_detector_data(data, 'image.data')
    assert out.shape == (4, 2, 16, 8, 6)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out[1, 1, :, 3, 3], np.arange(16))


def test_axis_argument():
    out = stack_detector_data(_train(range(16)), 'image.data', axis=0)
    assert out.shape == (16, 4, 8, 6)
    np.testing.assert_array_equal(out[:, 0, 0, 0], np.arange(16))


def test_missing_float_modules_nan():
    out = stack_detector_data(_train([0, 1, 3, 15]), 'image.data')
    assert out.shape == (4, 16, 8, 6)
    assert np.isnan(out[:, 2]).all()
    assert np.isnan(out[:, 4:15]).all()
    assert (out[:, 15] == 15).all()


def test_missing_int_modules_filled_with_zero_as_extra_data():
    from extra_data import stack_detector_data as theirs

    data = _train([0, 2], dtype=np.uint16)
    only_modules = {k: v for k, v in data.items() if '/DET/' in k}
    out = stack_detector_data(data, 'image.data')
    assert out.dtype == np.uint16 and (out[:, 1] == 0).all() and (out[:, 2] == 2).all()
    np.testing.assert_array_equal(out, theirs(only_modules, 'image.data'))
    out = stack_detector_data(data, 'image.data', fill_value=7)
    assert (out[:, 1] == 7).all() and (out[:, 2] == 2).all()
    # EXtra-data's spelling, also positional (5th argument) as there
    np.testing.assert_array_equal(stack_detector_data(data, 'image.data', fillvalue=7), out)
    np.testing.assert_array_equal(stack_detector_data(data, 'image.data', -3, 16, 7), out)
    np.testing.assert_array_equal(theirs(only_modules, 'image.data', fillvalue=7), out)
    with pytest.raises(TypeError, match='not both'):
        stack_detector_data(data, 'image.data', fill_value=1, fillvalue=2)
    with pytest.raises(FillValueError, match='uint16'):
        stack_detector_data(data, 'image.data', fill_value=-1)
    with pytest.raises(FillValueError, match='NaN'):
        stack_detector_data(data, 'image.data', fill_value=np.nan)


def test_complete_int_data_needs_no_fillvalue():
    out = stack_detector_data(_train(range(16), dtype=np.uint16), 'image.data')
    assert out.dtype == np.uint16


def test_empty_module_counts_as_missing():
    data = _train(range(16))
    data[AGIPD.format(5)]['image.data'] = np.zeros((0, 8, 6), np.float32)
    out = stack_detector_data(data, 'image.data')
    assert np.isnan(out[:, 5]).all()


def test_key_missing_in_module_counts_as_missing():
    data = _train(range(16))
    del data[AGIPD.format(9)]['image.data']
    out = stack_detector_data(data, 'image.data')
    assert np.isnan(out[:, 9]).all() and (out[:, 10] == 10).all()


def test_mismatched_shapes_named():
    data = _train(range(16))
    data[AGIPD.format(3)]['image.data'] = np.zeros((3, 8, 6), np.float32)
    with pytest.raises(ModuleMismatchError, match=r"module 3 .*3CH0.*\(3, 8, 6\)"):
        stack_detector_data(data, 'image.data')


def test_mismatched_dtypes_named():
    data = _train(range(16))
    data[AGIPD.format(12)]['image.data'] = np.zeros((4, 8, 6), np.float64)
    with pytest.raises(ModuleMismatchError, match=r"dtypes.*module 12.*float64"):
        stack_detector_data(data, 'image.data')


def test_corr_names_found_with_default_pattern():
    out = stack_detector_data(_train(range(16), name=AGIPD_CORR), 'image.data')
    assert out.shape == (4, 16, 8, 6)
    np.testing.assert_array_equal(out[0, :, 0, 0], np.arange(16))


def test_corr_preferred_over_raw_names():
    data = _train(range(16), name=AGIPD_CORR)
    data.update(_train(range(16), shape=(4, 2, 8, 6), dtype=np.uint16, extra=False))
    assert stack_detector_data(data, 'image.data').shape == (4, 16, 8, 6)


def test_jungfrau_numbered_from_one():
    name = 'SPB_IRDA_JF4M/DET/JNGFR{:02d}:daqOutput'
    data = _train(range(1, 9), shape=(16, 8, 6), name=name, key='data.adc')
    out = stack_detector_data(data, 'data.adc', modules=8)
    assert out.shape == (16, 8, 8, 6)
    np.testing.assert_array_equal(out[0, :, 0, 0], np.arange(1, 9))
    out2 = stack_detector_data(data, 'data.adc', modules=8,
                               pattern=r'/DET/JNGFR(\d+)', starts_at=1)
    np.testing.assert_array_equal(out, out2)


@pytest.mark.parametrize('name', ['FXE_XAD_JF1M/DET/MODULE_{}:daqOutput',
                                  'FXE_XAD_JF1M/DET/RECEIVER-{}:daqOutput',
                                  'SPB_IRDA_JF4M/DET/JNGFR{:02d}:daqOutput'])
def test_jungfrau_module_count_found(name):
    # regression: JUNGFRAU was stacked into 16 slots unless modules= was given
    data = _train(range(1, 5), shape=(2, 8, 6), name=name, key='data.adc')
    out = stack_detector_data(data, 'data.adc')
    assert out.shape == (2, 4, 8, 6)
    np.testing.assert_array_equal(out[0, :, 0, 0], np.arange(1, 5))


def test_module_out_of_range():
    with pytest.raises(ModuleMismatchError, match=r'8CH0.*9CH0.*outside the 8 modules.*\[8, 9\]'):
        stack_detector_data(_train(range(10)), 'image.data', modules=8)


def test_no_matching_sources():
    with pytest.raises(ModuleMismatchError, match='pattern'):
        stack_detector_data(_train([], extra=True), 'image.data')


def test_key_absent_everywhere():
    with pytest.raises(ModuleMismatchError, match="'image.nothing'"):
        stack_detector_data(_train(range(3)), 'image.nothing')


def test_two_detectors_same_module_number():
    data = _train(range(2))
    data.update(_train(range(2), name='MID_DET_AGIPD1M-1/DET/{}CH0:xtdf', extra=False))
    with pytest.raises(ModuleMismatchError,
                       match=r'several detectors \(MID_DET_AGIPD1M-1, SPB_DET_AGIPD1M-1\)'):
        stack_detector_data(data, 'image.data')
    with pytest.raises(ModuleMismatchError, match='both give module 0'):
        stack_detector_data(data, 'image.data', pattern=r'/DET/(\d+)CH')
    out = stack_detector_data(data, 'image.data', pattern=r'MID_DET_AGIPD1M-1/DET/(\d+)CH')
    assert out.shape == (4, 16, 8, 6)


def test_bridge_style_dict_without_metadata_and_lists():
    # bridge clients may hand over plain arrays in any memory layout
    data = {AGIPD.format(m): {'image.data': np.asfortranarray(np.full((2, 3, 4), m, 'f4'))}
            for m in range(4)}
    out = stack_detector_data(data, 'image.data', modules=4)
    assert out.shape == (2, 4, 3, 4)
    np.testing.assert_array_equal(out[1, :, 2, 3], np.arange(4))


def test_module_stack_view():
    data = _train([0, 1, 3])
    stack = stack_detector_data(data, 'image.data', real_array=False)
    assert isinstance(stack, ModuleStack)
    assert stack.shape == (4, 16, 8, 6)
    assert stack.modules_present == [0, 1, 3]
    # single module: returns the module's own array (no copy)
    assert np.shares_memory(stack[:, 1], data[AGIPD.format(1)]['image.data'])
    assert np.isnan(stack[:, 2]).all()
    assert stack[0, 3, 2, 2] == 3
    np.testing.assert_array_equal(np.asarray(stack), stack.asarray())
    part = stack[..., 1:3, :, :]
    assert part.shape == (4, 2, 8, 6)
    np.testing.assert_array_equal(part[0, :, 0, 0], [1, np.nan])
    assert stack[2].shape == (16, 8, 6)
    assert stack[:, -1].shape == (4, 8, 6)
    with pytest.raises(IndexError, match='Module 16 out of range for 16 modules'):
        stack[:, 16]


# -- with the real producers of train dicts ------------------------------------------

def test_stack_run_trains_matches_get_array(agipd_corr_path, open_run):
    from exfel_data.detectors import AGIPD1M as Det

    run = open_run(agipd_corr_path)
    arr = Det(run).get_array('image.data')
    sel = run.select('SPB_DET_AGIPD1M-1/CORR/*', 'image.*')
    for i, (_tid, data) in enumerate(sel.trains()):
        assert 'SA1_XTD2_XGM/XGM/DOOCS:output' not in data
        stacked = stack_detector_data(data, 'image.data')
        assert stacked.shape == (4, 16) + arr.shape[-2:]
        np.testing.assert_array_equal(stacked, arr.values[:, i].swapaxes(0, 1))
        if i == 2:
            break
    # the whole train dict, with the XGM and metadata in it
    tid, data = run.train_from_index(0)
    assert 'SA1_XTD2_XGM/XGM/DOOCS:output' in data
    np.testing.assert_array_equal(stack_detector_data(data, 'image.data'),
                                  arr.values[:, 0].swapaxes(0, 1))


def test_stack_run_handler_trains(agipd_raw_path):
    from exfel_data import RunHandler

    handler = RunHandler(str(agipd_raw_path))
    tid, data = next(iter(handler.trains()))
    stacked = stack_detector_data(data, 'image.data')
    assert stacked.shape == (4, 2, 16, 16, 8) and stacked.dtype == np.uint16


def test_stack_bridge_simulated_jungfrau():
    from bridge.simulation import Simulator

    data, meta = Simulator('JUNGFRAU', modules=3, pulses=2).train(0)
    stacked = stack_detector_data(data, 'data.adc', modules=3)
    assert stacked.shape[:2] == (2, 3)
    srcs = sorted(s for s in data if 'JNGFR' in s)
    np.testing.assert_array_equal(stacked[:, 1], data[srcs[1]]['data.adc'])


# -- EXtra-data's other stacking names -------------------------------------------------

def test_stack_data_as_extra_data():
    from extra_data import stack_data as theirs

    from exfel_data import stack_data

    data = {f'SA1_DIGI/ADC/{n}:channel_{c}': {'data.trace': np.full((5,), 10 * n + c, 'f4'),
                                              'metadata': {}}
            for n in (7, 12) for c in (0, 1)}
    expected = theirs(data, 'data.trace', axis=0)
    out = stack_data(data, 'data.trace', axis=0)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(out[:, 0], [70, 71, 120, 121])   # ordered by the numbers
    skip = ['SA1_DIGI/ADC/7:channel_0']
    np.testing.assert_array_equal(stack_data(data, 'data.trace', xcept=skip, axis=0),
                                  theirs(data, 'data.trace', xcept=skip, axis=0))
    data['SA1_DIGI/ADC/12:channel_1']['data.trace'] = np.zeros(5, 'f8')
    with pytest.raises(ModuleMismatchError, match=r'dtypes.*float64'):
        stack_data(data, 'data.trace')
    del data['SA1_DIGI/ADC/12:channel_1']['data.trace']
    with pytest.raises(KeyError, match=r"No key 'data.trace' for source 'SA1_DIGI/ADC/12"):
        stack_data(data, 'data.trace')


def test_stack_view_as_extra_data():
    from extra_data.stacking import StackView as TheirView

    from exfel_data.detectors import StackView

    arrays = {0: np.ones((3, 1, 4, 5), 'f4'), 2: np.full((3, 1, 4, 5), 2, 'f4')}
    ours = StackView(dict(arrays), 4, (3, 1, 4, 5), np.dtype('f4'), np.nan, stack_axis=-3)
    theirs = TheirView(dict(arrays), 4, (3, 1, 4, 5), np.dtype('f4'), np.nan, stack_axis=-3)
    assert ours.shape == theirs.shape == (3, 1, 4, 4, 5)
    np.testing.assert_array_equal(ours.asarray(), theirs.asarray())
    np.testing.assert_array_equal(ours[:, :, 2], theirs[:, :, 2])
    np.testing.assert_array_equal(ours[..., 1, :, :], theirs[..., 1, :, :])
    squeezed = ours.squeeze()
    assert squeezed.shape == (3, 4, 4, 5)
    np.testing.assert_array_equal(np.asarray(squeezed), theirs.squeeze().asarray())
    assert ours.squeeze(axis=1).shape == (3, 4, 4, 5)
    with pytest.raises(ValueError, match='size not equal to one'):
        ours.squeeze(axis=0)
