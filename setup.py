import os.path as osp

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_version() -> str:
    scope: dict = {}
    with open(osp.join(HERE, 'm2f_mm', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def read_requirements(name: str) -> list:
    reqs = []
    with open(osp.join(HERE, 'requirements', name)) as f:
        for line in f:
            line = line.split('#')[0].strip()
            if line:
                reqs.append(line)
    return reqs


setup(
    name='m2f_mm',
    version=read_version(),
    description='Mask2Former for OpenMMLab: one head for panoptic, instance '
    'and semantic segmentation in MMDetection and MMSegmentation',
    long_description=open(osp.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.8',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    # torch and mmcv are installed by tools/setup_env.sh first: a plain
    # `torch` requirement on a machine without torch pulls the CUDA build, and
    # mmcv must be compiled from source with its ops. torch 2.4 brought the
    # fused AdamW on CPU that the zoo schedules ask for.
    install_requires=['torch>=2.4', 'mmcv>=2.0.0,<2.2.0'] +
    read_requirements('runtime.txt'),
    extras_require={'tests': read_requirements('tests.txt'),
                    'export': read_requirements('export.txt')},
    license='Apache License 2.0',
    zip_safe=False,
)
