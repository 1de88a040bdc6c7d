"""The SSS data set: pairing by file name, the supervision protocol, preprocessing and its cache."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

import lsmseg.data.sss as sss
from lsmseg.data.phantom import write_cohort
from lsmseg.data.split import supervision_split
from lsmseg.keys import Keys, Mode, Tissue

N_CASES = 10
NATIVE = 256  # phantom matrix size: fast to draw, still a real crop and resize to the model size
SIZE = 64  # network input side used by the tests


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10-case NIfTI phantom cohort at 256x256 (read-only: copy it to modify)."""
    folder = tmp_path_factory.mktemp("sss")
    write_cohort(folder, N_CASES, fmt="nifti", seed=3, size=NATIVE)
    return folder


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private, empty cache per test, so hits and misses are the test's own."""
    monkeypatch.setenv("LSMSEG_DATA", str(tmp_path / "cache"))
    return tmp_path / "cache" / "sss-cache"


def _copy(cohort: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(cohort, tmp_path / "data"))


def _iou(a: np.ndarray, b: np.ndarray, label: int) -> float:
    inter = np.count_nonzero((a == label) & (b == label))
    return inter / max(np.count_nonzero((a == label) | (b == label)), 1)


def test_pairs_follow_the_papers_split(cohort: Path, cache: Path) -> None:
    rows = sss.load_sss(cohort, proportion=1.0, image_size=SIZE)
    assert [len(rows[k]) for k in ("train", "valid", "test")] == [7, 1, 2]
    ids = [r[Keys.CASE_ID] for k in ("train", "valid", "test") for r in rows[k]]
    assert ids == [f"phantom_{i:04d}" for i in range(1, N_CASES + 1)]  # sequential split, sorted ids
    for row in rows["train"] + rows["test"]:
        assert row[Keys.MODE] == Mode.PAIRED
        image, label = row[Keys.IMAGE], row[Keys.LABEL]
        assert image.shape == label.shape == (1, SIZE, SIZE)
        assert image.dtype == np.float32 and label.dtype == np.int64
        assert 0.0 <= image.min() and image.max() <= 1.0 and image.std() > 0.1
        assert set(np.unique(label)) == {int(t) for t in Tissue}


def test_proportion_keeps_p_paired_and_halves_the_rest(cohort: Path, cache: Path) -> None:
    rows = sss.load_sss(cohort, proportion=0.3, seed=4, image_size=SIZE)
    split = supervision_split(N_CASES, 0.3, seed=4)
    modes = [r[Keys.MODE] for r in rows["train"]]
    assert modes.count(Mode.PAIRED) == len(split.paired) == 2
    assert modes.count(Mode.X_ONLY) == modes.count(Mode.Y_ONLY) == 2  # 5 unpaired -> 2 + 2
    for row in rows["train"]:
        if row[Keys.MODE] == Mode.X_ONLY:
            assert not row[Keys.LABEL].any() and row[Keys.IMAGE].any()
        if row[Keys.MODE] == Mode.Y_ONLY:
            assert not row[Keys.IMAGE].any() and row[Keys.LABEL].any()


def test_unpaired_files_become_x_only_and_y_only_rows(cohort: Path, cache: Path, tmp_path: Path) -> None:
    data = _copy(cohort, tmp_path)
    paired = sss.load_sss(data, image_size=SIZE)
    mask_of = {r[Keys.CASE_ID]: r[Keys.LABEL] for r in paired["train"]}
    (data / "masks" / "phantom_0002.nii.gz").unlink()  # -> x-only
    (data / "images" / "phantom_0005.nii.gz").unlink()  # -> y-only
    rows = sss.load_sss(data, image_size=SIZE)
    train = {r[Keys.CASE_ID]: r for r in rows["train"]}
    assert len(rows["train"]) == 6 + 2 and len(rows["valid"]) == len(rows["test"]) == 1  # 8 pairs: 6/1/1
    assert train["phantom_0002"][Keys.MODE] == Mode.X_ONLY and not train["phantom_0002"][Keys.LABEL].any()
    y_only = train["phantom_0005"]
    assert y_only[Keys.MODE] == Mode.Y_ONLY and not y_only[Keys.IMAGE].any()
    # Cropped around its own tissue (no skin: a box a pixel or two tighter), the y-only mask
    # matches the crop of the image box: the same tissue areas and almost every pixel.
    y, paired_y = y_only[Keys.LABEL], mask_of["phantom_0005"]
    assert np.mean(y == paired_y) > 0.9
    for tissue in (Tissue.SAT, Tissue.VAT, Tissue.MUSCLE):
        assert np.count_nonzero(y == tissue) == pytest.approx(np.count_nonzero(paired_y == tissue), rel=0.1)


def test_dicom_images_pair_with_nifti_masks_on_the_same_grid(tmp_path: Path, cache: Path) -> None:
    write_cohort(tmp_path / "dcm", 3, fmt="dicom", seed=3, size=NATIVE)
    write_cohort(tmp_path / "nii", 3, fmt="nifti", seed=3, size=NATIVE)
    from_dicom, from_nifti = (sss.load_sss(tmp_path / f, image_size=SIZE) for f in ("dcm", "nii"))
    for a, b in zip(
        from_dicom["train"] + from_dicom["test"], from_nifti["train"] + from_nifti["test"], strict=True
    ):
        assert np.array_equal(a[Keys.LABEL], b[Keys.LABEL])
        assert np.allclose(a[Keys.IMAGE], b[Keys.IMAGE], atol=1e-6)


def test_a_mask_of_the_wrong_size_fails_early_naming_the_case(
    cohort: Path, cache: Path, tmp_path: Path
) -> None:
    data = _copy(cohort, tmp_path)
    path = data / "masks" / "phantom_0003.nii.gz"
    src = nib.load(path)
    small = nib.Nifti1Image(np.zeros((200, 180, 1), np.uint8), src.affine)
    nib.save(small, path)
    with pytest.raises(
        ValueError, match=r"case phantom_0003: mask .* shape \(180, 200\) .* shape \(256, 256\)"
    ):
        sss.load_sss(data, image_size=SIZE)


def test_masks_must_hold_tissue_labels(cohort: Path, cache: Path, tmp_path: Path) -> None:
    data = _copy(cohort, tmp_path)
    path = data / "masks" / "phantom_0001.nii.gz"
    src = nib.load(path)
    nib.save(nib.Nifti1Image(np.full(src.shape, 7, np.uint8), src.affine), path)
    with pytest.raises(
        ValueError, match=r"case phantom_0001: mask phantom_0001\.nii\.gz must hold labels 0\.\.3"
    ):
        sss.load_sss(data, image_size=SIZE)


def test_bad_folders_get_one_line_messages(tmp_path: Path, cohort: Path, cache: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sss.load_sss(tmp_path / "nope")
    with pytest.raises(ValueError, match="holds no SSS cases"):
        sss.load_sss(tmp_path)
    data = _copy(cohort, tmp_path)
    for p in sorted((data / "masks").iterdir())[2:]:
        p.unlink()
    with pytest.raises(ValueError, match="has 2 image/mask pair"):
        sss.load_sss(data)
    shutil.copy(data / "images" / "phantom_0001.nii.gz", data / "images" / "phantom_0001.nii")
    with pytest.raises(ValueError, match="case phantom_0001 has two files"):
        sss.scan_sss(data)
    with pytest.raises(ValueError, match="hu_range must be an increasing"):
        sss.load_sss(cohort, hu_range=(250, -250))


def test_a_second_load_reads_the_cache(
    cohort: Path, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _copy(cohort, tmp_path)
    first = sss.load_sss(data, image_size=SIZE)
    assert len(list(cache.glob("*.pt"))) == N_CASES
    calls: list[str] = []
    original = sss.LoadSSSCased.__call__

    def counted(self: sss.LoadSSSCased, item: dict) -> dict:
        calls.append(item[Keys.CASE_ID])
        return original(self, item)

    monkeypatch.setattr(sss.LoadSSSCased, "__call__", counted)
    second = sss.load_sss(data, image_size=SIZE)
    assert calls == []
    for a, b in zip(first["train"], second["train"], strict=True):
        assert np.array_equal(a[Keys.IMAGE], b[Keys.IMAGE]) and np.array_equal(a[Keys.LABEL], b[Keys.LABEL])
        assert b[Keys.LABEL].dtype == np.int64
    sss.load_sss(data, image_size=32)  # other settings: other entries
    sss.load_sss(data, image_size=SIZE, hu_range=(-200, 200))
    assert len(calls) == 2 * N_CASES
    # A changed file (new mtime) is preprocessed again.
    calls.clear()
    path = data / "masks" / "phantom_0001.nii.gz"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    sss.load_sss(data, image_size=SIZE)
    assert calls == ["phantom_0001"]


def test_embedded_phantom_is_generated_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LSMSEG_DATA", str(tmp_path))
    folder = Path(sss.embedded_phantom(n=3, seed=1))
    assert sorted(p.name for p in (folder / "images").iterdir()) == [
        f"phantom_000{i}.nii.gz" for i in (1, 2, 3)
    ]
    assert (folder / "truth.csv").is_file() and (folder / "patients.csv").is_file()
    stamp = (folder / "images" / "phantom_0001.nii.gz").stat().st_mtime_ns
    assert sss.embedded_phantom(n=3, seed=1) == str(folder)
    assert (folder / "images" / "phantom_0001.nii.gz").stat().st_mtime_ns == stamp
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_list_images_finds_the_slices(tmp_path: Path, cohort: Path) -> None:
    rows = sss.list_images(cohort)
    assert [r[Keys.CASE_ID] for r in rows] == [f"phantom_{i:04d}" for i in range(1, N_CASES + 1)]
    assert rows[0][Keys.IMAGE] == str(cohort / "images" / "phantom_0001.nii.gz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no CT slices"):
        sss.list_images(tmp_path / "empty")


@pytest.mark.slow
def test_a_tiny_lsm_learns_the_phantom(tmp_path: Path, cache: Path) -> None:
    """The rows are learnable end to end: a small LSM reaches mIoU >= 0.7 on the test split.

    80 cases (56 train, 8 valid, 16 test) at 128x128, ngf 8, lr 2e-3, 16 epochs with the
    bundles' validation, early stopping (best weights restored) and IoU report. A misaligned
    crop, a wrong window or labels off the image grid would keep it far below.
    """
    from monai.data import DataLoader
    from monai.engines import SupervisedEvaluator
    from monai.handlers import MeanIoUHandler, ValidationHandler, from_engine
    from monai.transforms import AsDiscreted
    from monai.utils import set_determinism

    from lsmseg.data.split import row_sampler
    from lsmseg.engines import IoUReport, SemiSupervisedTrainer, StagedEarlyStopping
    from lsmseg.methods import Domain, LatentSpaceMapping

    write_cohort(tmp_path / "data", 80, fmt="nifti", seed=0, size=NATIVE)
    threads = torch.get_num_threads()
    torch.set_num_threads(
        1
    )  # small convolutions: a second thread gains little and loses much on a busy machine
    try:
        set_determinism(seed=0)
        rows = sss.load_sss(tmp_path / "data", image_size=128)
        net = LatentSpaceMapping(
            [Domain("image", "image", 1), Domain("label", "mask", sss.N_CLASSES)],
            ngf=8,
            ndf=8,
            image_size=128,
        )
        post = AsDiscreted(keys=["pred", "label"], argmax=[True, False], to_onehot=[sss.N_CLASSES] * 2)

        def evaluator(split: str, handlers: list) -> SupervisedEvaluator:
            return SupervisedEvaluator(
                "cpu",
                DataLoader(rows[split], batch_size=8),
                net,
                postprocessing=post,
                key_val_metric={
                    "miou": MeanIoUHandler(
                        include_background=False, output_transform=from_engine(["pred", "label"])
                    )
                },
                val_handlers=handlers,
            )

        early_stop = StagedEarlyStopping(patience=100, ckpt_path=tmp_path / "model.pt")
        loader = DataLoader(rows["train"], batch_size=4, sampler=row_sampler(rows["train"], seed=0))
        validate = ValidationHandler(validator=evaluator("valid", [early_stop]), interval=1, epoch_level=True)
        trainer = SemiSupervisedTrainer(
            "cpu", 16, loader, net, method="lsm", learning_rate=2e-3, handlers=[validate]
        )
        early_stop.set_trainer(trainer)
        trainer.run()
        report = IoUReport(tmp_path / "metrics.json", sss.CLASS_NAMES)
        evaluator("test", [report]).run()
    finally:
        torch.set_num_threads(threads)
    result = report.result()
    assert result["n"] == 16 and set(result["iou"]) == {"sat", "vat", "muscle"}
    assert result["miou"] >= 0.7, result
